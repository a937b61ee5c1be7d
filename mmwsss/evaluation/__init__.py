# Copyright (c) mmwsss contributors.
