"""HTTP service for the MNIST classifier: a drawing page and a JSON API that run the JAX and PyTorch backends side by side."""
