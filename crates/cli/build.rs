//! Release builds of `aof` for Linux/glibc pack their relative relocations (DT_RELR:
//! `ld -z pack-relative-relocs`, binutils ≥ 2.38, run by glibc ≥ 2.36; an older `ld`
//! warns and ignores it). The binary is position independent, so every pointer in its
//! read-only data needs a relocation at start; unpacked, that table is well over 1 MB,
//! read whole by the loader at every start and then resident in an idle coordinator.
//! Packed, it is a few KB (see BENCHMARKS.md, idle RSS).
fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let release = var("PROFILE") == "release";
    let linux_gnu = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if release && linux_gnu {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
