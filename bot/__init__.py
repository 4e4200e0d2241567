"""avatarbot core: free of any chat platform."""

__version__ = "0.1.0"
