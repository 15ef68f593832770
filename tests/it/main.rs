//! The integration tests: one binary, one module per area.

mod support;

mod adversarial;

mod cache;
mod embed;
mod gc;
mod observe;
mod ops;
mod pod;
mod real;
mod watch;
