"""ucd-gateway: a GraphQL gateway in front of Insider's UCD user-data REST APIs."""

__version__ = "0.1.0"
