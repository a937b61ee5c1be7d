# Copyright (c) mmwsss contributors.
"""Out-of-tree projects, loaded by ``custom_imports`` in their configs."""
