"""One construct per file, each owning its resources; the stack wires and grants between them."""
