//! For runtimes attaching pods: typed Kubernetes `CNI_ARGS` and capability
//! arguments.

mod args;

pub use self::args::{
    Bandwidth, CapabilityArgs, DnsConfig, IpRange, K8sArgs, PortMapping, Protocol,
};
