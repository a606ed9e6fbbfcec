//! Findings of the hostile-tenant review of the reset (docs/security.md)
//! that show on the simulated kernel; the real-kernel ones are in
//! `tests/real_kernel/review_reset.rs`. Each fails on the reviewed code.

use tap_pool::{Device, Kernel};
use tap_pool_actors::TapSpec;
use tap_pool_actors::sim::SimKernel;
use tap_pool_testkit::name;

/// Promise (docs/security.md): "Every row holds on the real kernel (6.18
/// here) and on the simulated one, which follows the same rules
/// (`src/sim.rs`)"; the persistence row: "If the tenant then closes its
/// file the kernel removes the tap: the pool sees it vanish and refills".
///
/// Steps: a tenant attached to its tap (`set_in_use`) turns persistence
/// off (`tamper`, as the property test's `Tenant` step does) and closes
/// its file; the pool resets the tap.
///
/// Breaks: the simulated kernel keeps a tap that is neither persistent
/// nor held by any file (src/sim.rs `tamper`, `set_in_use`), a state Linux
/// never has (`__tun_detach` unregisters it as the last file goes); its
/// `reset_tap` then succeeds and makes it persistent again, where Linux
/// answers `NoSuchDevice`. So the property test's "persistence off" step
/// exercises a path the real kernel cannot take, and never the vanishing
/// the doc describes.
#[test]
fn the_simulated_kernel_removes_a_tap_whose_persistence_is_off_once_no_file_holds_it() {
    let mut k = SimKernel::new();
    let tap = name("tap-pool-0");
    let spec = TapSpec::default();
    let made = k.create_tap(tap, &spec).expect("created");
    assert!(k.set_in_use(tap, true), "the tenant attaches");
    assert!(k.tamper(tap, |l| l.persistent = false), "TUNSETPERSIST 0");
    assert!(k.set_in_use(tap, false), "the tenant closes its file");
    let reset = k.reset_tap(Device::new(tap, made.index), &spec, made.mac);
    assert!(
        !k.contains(tap),
        "a tap neither persistent nor held still exists in the simulated kernel \
         ({:?}), and its reset answered {reset:?}; Linux has removed it",
        k.tap(tap)
    );
}
