//! tap-pool: a warm pool of Linux TAP devices for microVM orchestrators.
#![warn(missing_docs)]

pub mod kernel;
pub mod name;

pub use kernel::{CreateStep, Errno, Kernel, KernelError, KernelFactory, LinkInfo, TapSpec, TunKind};
pub use name::{NameError, TapName, MAX_NAME_LEN};
