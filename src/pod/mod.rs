//! For runtimes attaching pods: the pod facade ([`PodNetworks`]) and typed
//! Kubernetes `CNI_ARGS` and capability arguments.

mod args;
mod networks;

pub use self::args::{
    Bandwidth, CapabilityArgs, DnsConfig, IpRange, K8sArgs, PortMapping, Protocol,
};
pub use self::networks::{IfNames, NetworkRequest, Pod, PodInterface, PodNetworks};
