"""The HTTP endpoints beside GraphQL, and the middleware in front of every route."""
