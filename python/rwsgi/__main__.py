"""``python -m rwsgi ...``: the same as the ``rwsgi`` command."""

# Guarded: multiprocessing's spawn imports the parent's main module again.
if __name__ == "__main__":
    from rwsgi import main

    main()
