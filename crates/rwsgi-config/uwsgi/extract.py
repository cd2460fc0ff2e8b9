#!/usr/bin/env python3
"""Regenerates options-2.0.tsv from a uWSGI source tree (a checkout of its
uwsgi-2.0 branch): every `struct uwsgi_option` table of its core and
plugins gives an option's name, whether it takes a value, its short flag,
the kind of value its handler stores, and where it is defined.

Dispositions (what rwsgi does with each option) are ours: they are kept
from the current file, and a name uWSGI added since is written as
"unclassified", which the crate's tests refuse until someone decides.

    python3 extract.py ~/src/uwsgi > options-2.0.tsv.new
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = re.compile(r'struct uwsgi_option\s+\w+\s*\[\]\s*=\s*\{(.*?)\n\s*\}\s*;', re.S)
ENTRY = re.compile(
    r'\{\s*"([^"]+)"\s*,\s*(\w+)\s*,\s*(0|\'.\')\s*,\s*"(?:[^"\\]|\\.)*"(?:\s*"(?:[^"\\]|\\.)*")*'
    r'\s*,\s*(\w+)\s*,\s*[^,}]*?\s*(?:,\s*[^}]*?\s*)?\}',
    re.S,
)
TAKES = {'no_argument': 'none', 'required_argument': 'required', 'optional_argument': 'optional'}
NUMBER = {'uwsgi_opt_set_int', 'uwsgi_opt_set_64bit', 'uwsgi_opt_set_16bit',
          'uwsgi_opt_set_megabytes', 'uwsgi_opt_set_rawint'}
LIST = {'uwsgi_opt_pythonpath', 'uwsgi_opt_static_map', 'uwsgi_opt_set_req_logger',
        'uwsgi_opt_set_logger'}


def kind(takes, handler):
    if handler == 'uwsgi_opt_logic':
        return 'logic'
    if takes == 'none' or handler in ('uwsgi_opt_true', 'uwsgi_opt_false'):
        return 'flag'
    if handler in NUMBER:
        return 'number'
    if handler.startswith('uwsgi_opt_add_') or handler in LIST:
        return 'list'
    return 'text'


def options(root):
    for dirpath, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith('.c')):
            path = os.path.join(dirpath, name)
            parts = os.path.relpath(path, root).split(os.sep)
            if parts[0] not in ('core', 'plugins') or len(parts) < 2:
                continue
            origin = 'core' if parts[0] == 'core' else parts[1]
            text = open(path, errors='replace').read()
            for table in TABLE.finditer(text):
                for e in ENTRY.finditer(table.group(1)):
                    takes = TAKES[e.group(2)]
                    short = e.group(3).strip("'") if e.group(3) != '0' else ''
                    yield e.group(1), takes, short, kind(takes, e.group(4)), origin


def main():
    current = os.path.join(HERE, 'options-2.0.tsv')
    header, kept = [], {}
    for line in open(current):
        if line.startswith('#'):
            header.append(line)
        elif line.strip():
            fields = line.rstrip('\n').split('\t')
            kept[fields[0]] = fields[5]
    sys.stdout.writelines(header)
    seen = set()
    for name, takes, short, kind_, origin in options(sys.argv[1]):
        if name not in seen:
            seen.add(name)
            print('\t'.join([name, takes, short, kind_, origin, kept.get(name, 'unclassified')]))


if __name__ == '__main__':
    main()
