//! Network namespaces for tests (to come).
