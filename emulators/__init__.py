"""Local peers for development and tests: never deployed."""
