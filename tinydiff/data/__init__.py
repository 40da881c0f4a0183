"""Data: toy 2D point clouds (``toy2d``), a user's own .npy/.csv points (``files``), and MNIST (``mnist``).

Import the module you need (``from tinydiff.data.toy2d import make_dataset``); nothing is loaded here, so importing
the package stays cheap.
"""
