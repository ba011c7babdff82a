"""ONNX Runtime backend: backend.py (the Backend and its builder context), export.py, quantize.py."""
