"""Doors into a model package other than `fsexport build`: Keras files and ONNX graphs."""
