"""Image operations shared by several plugins that no maintained library provides."""
