"""Local Kafka and PostgreSQL for development and tests."""
