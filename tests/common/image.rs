//! The test image: built from the host's binaries by
//! docker/build-test-image.sh, once per run while its recipe is unchanged.

use std::process::Command;
use std::sync::OnceLock;

use super::repo_root;

/// Tag of the image built from the host's binaries.
pub const TEST_IMAGE: &str = "shed-test:latest";

/// Fails loudly when there is no Docker engine: Docker tests never skip.
pub fn require_docker() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let out = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
            Err(e) => Err(e.to_string()),
        }
    });
    if let Err(e) = ready {
        panic!(
            "these tests need a running Docker engine (CI={}): {e}",
            std::env::var("CI").unwrap_or_default()
        );
    }
}

/// The test image, built on first use in this test binary; the script skips
/// the build when the image already matches its recipe, so after the first
/// binary of a run this is one hash and one `docker image inspect`.
pub fn test_image() -> &'static str {
    require_docker();
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        build_image(&[], TEST_IMAGE);
    });
    TEST_IMAGE
}

/// Runs docker/build-test-image.sh, which locks against parallel builds and
/// reuses `tag` while its recipe is unchanged.
pub fn build_image(flags: &[&str], tag: &str) {
    let script = repo_root().join("docker/build-test-image.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(flags)
        .arg(tag)
        .output()
        .expect("running bash");
    assert!(
        out.status.success(),
        "building {tag} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
