"""Built-in face detectors: ``mtcnn`` (facenet-pytorch) and ``none`` (the whole image is one face)."""
