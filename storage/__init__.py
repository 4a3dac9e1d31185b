"""The ground floor's files: crash-safe writes and reads (files.py) and advisory locks (lock.py),
used alike by the engine, the image data, the runner and the analyses."""
