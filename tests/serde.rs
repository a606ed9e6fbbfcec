//! serde (the `serde` and `toml` features): what an orchestrator persists and
//! reads back — leases across its own restart, the configuration from a
//! file, the reports for its logs and tools.

use tap_pool_actors::sim::SimKernel;
use tap_pool_actors::{
    ConfigError, Lease, LeaseSource, PoolConfig, PoolStats, Recycle, Released, Seed, SeedReport,
    TapName, Warm,
};
use tap_pool_testkit::{SimPool, name};

#[test]
fn the_default_configuration_reads_back_from_toml_unchanged() {
    let config = PoolConfig::default();
    let text = toml::to_string(&config).unwrap();
    assert!(
        text.contains("initial = \"100ms\""),
        "durations read as people write them:\n{text}"
    );
    assert_eq!(PoolConfig::from_toml(&text).unwrap(), config);
    // Every key is optional: an empty file is the default configuration.
    assert_eq!(PoolConfig::from_toml("").unwrap(), config);
}

#[test]
fn a_configuration_file_sets_what_it_names_and_keeps_the_rest() {
    let config = PoolConfig::from_toml(
        r#"
        size = 3
        prefix = "vmtap"
        recycle = "fresh"
        [tap]
        owner = 1000
        bridge = "br-vms"
        mtu = 9000
        device_group = 7
        [warm_retry]
        initial = "5ms"
        max = "2s"
        max_attempts = 3
        "#,
    )
    .unwrap();
    let mut want = PoolConfig::default();
    want.size = 3;
    want.prefix = "vmtap".into();
    want.recycle = Recycle::Fresh;
    want.tap.owner = Some(1000);
    want.tap.bridge = Some(name("br-vms"));
    want.tap.mtu = Some(9000);
    want.tap.device_group = Some(7);
    want.warm_retry.initial = std::time::Duration::from_millis(5);
    want.warm_retry.max = std::time::Duration::from_secs(2);
    want.warm_retry.max_attempts = 3;
    assert_eq!(config, want);
}

#[test]
fn a_bad_configuration_file_is_a_typed_error_saying_where() {
    let toml_error = |text: &str| match PoolConfig::from_toml(text) {
        Err(ConfigError::Toml { message }) => message,
        other => panic!("{text:?} gave {other:?}"),
    };
    assert!(
        toml_error("size = 3\nsiez = 4").contains("siez"),
        "an unknown key is named"
    );
    assert!(toml_error("[tap]\nbrige = \"br0\"").contains("brige"));
    assert!(toml_error("size = -1").contains("size"));
    assert!(toml_error("recycle = \"sometimes\"").contains("sometimes"));
    assert!(toml_error("[tap]\nbridge = \"a-bridge-name-too-long\"").contains("15"));
    assert!(toml_error("[tap]\nbridge = \"br/0\"").contains('/'));
    assert!(
        toml_error("[warm_retry]\ninitial = \"soon\"\nmax = \"1s\"\nmax_attempts = 1")
            .contains("soon")
    );
    assert!(
        toml_error("size = ").contains("line 1"),
        "a syntax error says where"
    );
    // Read, then refused by the same checks as a pool's.
    assert_eq!(
        PoolConfig::from_toml("[tap]\ndevice_group = 0"),
        Err(ConfigError::DefaultDeviceGroup)
    );
    assert_eq!(
        PoolConfig::from_toml("prefix = \"\""),
        Err(ConfigError::EmptyPrefix)
    );
    assert!(matches!(
        PoolConfig::from_toml("[warm_retry]\ninitial = \"0s\"\nmax = \"1s\"\nmax_attempts = 1"),
        Err(ConfigError::Backoff { .. })
    ));
    // What the kernel would refuse at every create is refused when read.
    for mtu in [0, 67, 65522, u32::MAX] {
        assert_eq!(
            PoolConfig::from_toml(&format!("[tap]\nmtu = {mtu}")),
            Err(ConfigError::Mtu { mtu })
        );
    }
    for mtu in [68, 1500, 9000, 65521] {
        assert!(
            PoolConfig::from_toml(&format!("[tap]\nmtu = {mtu}")).is_ok(),
            "{mtu}"
        );
    }
    assert_eq!(
        PoolConfig::from_toml("[tap]\nowner = 4294967295"),
        Err(ConfigError::InvalidId {
            setting: "tap.owner"
        })
    );
    assert_eq!(
        PoolConfig::from_toml("[tap]\ngroup = 4294967295"),
        Err(ConfigError::InvalidId {
            setting: "tap.group"
        })
    );
}

#[test]
fn a_name_reads_back_as_itself_and_a_name_the_kernel_refuses_does_not_read() {
    let plain = name("tap-pool-7");
    assert_eq!(serde_json::to_string(&plain).unwrap(), r#""tap-pool-7""#);
    assert_eq!(
        serde_json::from_str::<TapName>(r#""tap-pool-7""#).unwrap(),
        plain
    );
    // Kernel names are bytes: one that is not UTF-8 is written as bytes and
    // reads back as the same name.
    let raw = TapName::from_bytes(b"tap\xff").unwrap();
    let json = serde_json::to_string(&raw).unwrap();
    assert_eq!(json, "[116,97,112,255]");
    assert_eq!(serde_json::from_str::<TapName>(&json).unwrap(), raw);
    for bad in [
        r#""""#,
        r#"".""#,
        r#""a/b""#,
        r#""a b""#,
        r#""sixteen-bytes-xx""#,
        "[97,0,98]",
        "[97,97,97,97,97,97,97,97,97,97,97,97,97,97,97,97,97,97,97,97]",
        "17",
    ] {
        assert!(
            serde_json::from_str::<TapName>(bad).is_err(),
            "{bad} read as a name"
        );
    }
}

#[actix_rt::test]
async fn a_lease_written_down_is_released_by_what_is_read_back() {
    let p = SimPool::start(2);
    p.warm().await;
    let lease = p.acquire("vm-a").await.unwrap();
    let stored = serde_json::to_string(&lease).unwrap();
    let back: Lease = serde_json::from_str(&stored).unwrap();
    assert_eq!(back, lease);
    assert_eq!(back.source, LeaseSource::Pool);
    assert_eq!(p.release_token(back.token).await, Ok(Released::Pooled));
    // The same record read again is a stale release, refused.
    let again: Lease = serde_json::from_str(&stored).unwrap();
    assert!(p.release_token(again.token).await.is_err());
}

#[test]
fn a_token_reads_back_only_from_its_own_form() {
    let token_json = |text: &str| serde_json::from_str::<tap_pool_actors::LeaseToken>(text);
    let token = token_json(r#""0123456789abcdef-fedcba9876543210""#).unwrap();
    assert_eq!(token.to_u128(), 0x0123456789abcdef_fedcba9876543210);
    assert_eq!(
        serde_json::to_string(&token).unwrap(),
        r#""0123456789abcdef-fedcba9876543210""#
    );
    for bad in [
        r#""""#,
        r#""0123456789abcdef""#,
        r#""0123456789abcdef-fedcba987654321""#,
        r#""0123456789abcdeg-fedcba9876543210""#,
        r#""+123456789abcdef-fedcba9876543210""#,
        r#""0123456789abcdef-fedcba9876543210-0""#,
        "1234",
    ] {
        assert!(token_json(bad).is_err(), "{bad} read as a token");
    }
}

#[actix_rt::test]
async fn reports_and_stats_serialize_and_the_data_ones_read_back() {
    let mut sim = SimKernel::new();
    tap_pool::Kernel::create_tap(&mut sim, name("tap-pool-4"), &Default::default()).unwrap();
    sim.set_in_use(name("tap-pool-4"), true);
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 2;
        c
    });
    let seed: SeedReport = p
        .pool
        .send(Seed {
            used: vec![name("tap-pool-4"), name("vm-gone")],
        })
        .await
        .unwrap()
        .unwrap();
    let json = serde_json::to_value(&seed).unwrap();
    assert_eq!(json["held"][0]["name"], "tap-pool-4");
    assert_eq!(json["missing"][0], "vm-gone");
    assert_eq!(serde_json::from_value::<SeedReport>(json).unwrap(), seed);

    let warm = p.pool.send(Warm).await.unwrap();
    let json = serde_json::to_value(&warm).unwrap();
    assert_eq!(
        json["created"].as_array().unwrap().len(),
        warm.created.len()
    );

    let stats = p.settle().await;
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["idle"], 2);
    assert_eq!(serde_json::from_value::<PoolStats>(json).unwrap(), stats);

    // An error inside a report is written with its fields, for a log.
    let error = tap_pool_actors::KernelError::Exists { name: name("vm-a") };
    assert_eq!(
        serde_json::to_value(&error).unwrap(),
        serde_json::json!({"Exists": {"name": "vm-a"}})
    );
}
