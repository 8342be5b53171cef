"""Use cases behind the GraphQL fields: a principal and plain values in, models out."""
