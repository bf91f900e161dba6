import os

os.environ.setdefault("NETLAPSE_PROGRESS", "0")
os.environ.setdefault("KERAS_BACKEND", "torch")
