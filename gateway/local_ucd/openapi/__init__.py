"""The local UCD's OpenAPI document (§5.3): its vocabulary, schemas, operations and paths."""
