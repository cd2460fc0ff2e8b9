# rwsgi — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
CARGO ?= cargo

.PHONY: all build release wheel test-wheel run venv test lint unit integration bench bench-rss bench-codec bench-instructions soak soak-short scale-test fuzz fuzz-long clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# The Python package, as users install it: one wheel for CPython 3.10 and
# later (abi3), in dist/ (maturin; the platform tag is what the machine's
# glibc allows, see README "Installing").
wheel: venv
	rm -f dist/rwsgi-*.whl
	$(VENV)/bin/maturin build --release --out dist -i $(VENV)/bin/python

# The wheel the tests run (a debug build, quicker to make), installed into
# the test virtualenv: the integration tests start its `rwsgi` command.
TEST_WHEEL_DIR := target/test-wheel
test-wheel: venv
	rm -rf $(TEST_WHEEL_DIR)
	$(VENV)/bin/maturin build --out $(TEST_WHEEL_DIR) -i $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps $(TEST_WHEEL_DIR)/rwsgi-*.whl

# Serves examples/hello on all three protocols with 4 threads (conf/rwsgi.ini):
# HTTP on http://127.0.0.1:8000, uwsgi on 127.0.0.1:9000 (nginx uwsgi_pass)
# and FastCGI on 127.0.0.1:9001 (nginx fastcgi_pass), from the wheel
# installed into the virtualenv.
run: wheel
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps dist/rwsgi-*.whl
	$(VENV)/bin/rwsgi --ini conf/rwsgi.ini

# A virtualenv with what the test apps import (Flask, Django), made with the
# same Python rwsgi embeds.
$(VENV)/.installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

venv: $(VENV)/.installed

# The fuzz targets are a crate of their own (built by cargo-fuzz on
# nightly); checking them here keeps them compiling as the code moves.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd fuzz && $(CARGO) check --quiet --bins

unit:
	$(CARGO) test --workspace --lib --bins

# The integration tests run the wheel's `rwsgi` (TESTED_RWSGI), and
# tests/wheel.rs installs the wheel itself (TESTED_WHEEL) into fresh
# virtualenvs of every CPython here.
TESTED := RWSGI_TEST_VENV=$(abspath $(VENV)) TESTED_RWSGI=$(abspath $(VENV))/bin/rwsgi \
	TESTED_WHEEL=$$(ls $(abspath $(TEST_WHEEL_DIR))/rwsgi-*.whl)

integration: test-wheel
	$(TESTED) $(CARGO) test --test '*'

# Then the shapes whose start differs for the binary (it embeds Python and
# re-executes /proc/self/exe), against the binary.
test: lint test-wheel
	$(TESTED) $(CARGO) test --workspace
	RWSGI_TEST_VENV=$(abspath $(VENV)) $(CARGO) test --test process_model --test lifecycle --test cli

# Load benchmark against the peers (installed into benches/.venv): see benches/README.md.
bench: release wheel
	$(PYTHON) benches/load.py
	$(PYTHON) benches/idle.py

# A soak run: nginx in front of rwsgi on all three protocols, a mixed load,
# reloads, resizes and SIGKILLed workers (benches/soak.py). Minutes;
# soak-short is the half-minute version CI runs.
soak: release venv
	$(PYTHON) benches/soak.py --duration 300 --venv $(abspath $(VENV))

soak-short: release venv
	$(PYTHON) benches/soak.py --duration 30 --chaos-every 3 --venv $(abspath $(VENV))

# Scale-out: three hosts (network namespaces) running the wheel's rwsgi
# behind nginx (conf/nginx-upstream.conf), under load, through a rolling
# restart, a rolling reload and a killed host (benches/scale.py; as root,
# for ip netns). About 30 s; CI runs it.
scale-test: test-wheel
	$(PYTHON) benches/scale.py --rwsgi $(abspath $(VENV))/bin/rwsgi

# Memory per worker, preload vs lazy-apps, on the Django example (a few seconds).
bench-rss: venv
	RWSGI_TEST_VENV=$(abspath $(VENV)) $(PYTHON) benches/rss.py

bench-codec:
	$(CARGO) bench --bench http1_codec --bench proxy_codecs --bench static_files

# Instructions per request under callgrind (needs valgrind): a count that
# the machine's other work does not move.
bench-instructions: release
	$(PYTHON) benches/instructions.py

# 60 s per parser (cargo install cargo-fuzz; needs the nightly toolchain).
FUZZ_TARGETS := http1_decode http1_differential uwsgi_decode fastcgi_decode ini_parse config_load site_request
fuzz:
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		$(CARGO) +nightly fuzz run $$target -- -max_total_time=60 || exit 1; \
	done

# 10 million runs of each codec target and the ini parser, from and into the
# corpus kept in fuzz/corpus/ (minimised after), one line of figures each.
# Without AddressSanitizer: the parsers are #![forbid(unsafe_code)], so it
# finds nothing there and costs about half the speed; panics, overflow
# checks and debug assertions stay on.
FUZZ_LONG_TARGETS := http1_decode http1_differential uwsgi_decode fastcgi_decode ini_parse
FUZZ_RUNS ?= 10000000
fuzz-long:
	cd fuzz && for target in $(FUZZ_LONG_TARGETS); do \
		mkdir -p corpus/$$target; \
		$(CARGO) +nightly fuzz run --sanitizer none $$target corpus/$$target -- -runs=$(FUZZ_RUNS) -print_final_stats=1 2>&1 \
			| tee /tmp/rwsgi-fuzz-$$target.log | grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==ERROR)' || exit 1; \
		grep -q '^Done' /tmp/rwsgi-fuzz-$$target.log || exit 1; \
		$(CARGO) +nightly fuzz cmin --sanitizer none $$target corpus/$$target >/dev/null 2>&1 || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf $(VENV) benches/.venv
