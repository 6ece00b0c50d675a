"""Connection sensitivity, random and magnitude scores (placeholder: being written)."""
