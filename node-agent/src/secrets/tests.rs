use super::*;
use fjord_core::secret::Secrets;

fn spec(names: &[&str]) -> FunctionSpec {
    let mut spec = FunctionSpec::with_command("f", vec!["x".into()]);
    spec.secrets = Secrets::Named(names.iter().map(|n| n.to_string()).collect());
    spec
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn files_are_written_once_per_version_set_and_a_rotation_gets_a_new_directory() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("agent");
    let files = SecretFiles::new(base.clone(), "n1");
    assert_eq!(files.prepare(&spec(&[]), false).await.unwrap(), None);
    files.insert("db", 1, b"one");
    files.insert("api.key", 3, b"k");
    let first = files.prepare(&spec(&["db", "api.key"]), false).await.unwrap().unwrap();
    assert_eq!(std::fs::read(first.join("db")).unwrap(), b"one");
    assert_eq!(std::fs::read(first.join("api.key")).unwrap(), b"k");
    assert_eq!(mode(&base), 0o700, "the base keeps everyone else out");
    assert_eq!((mode(&first), mode(&first.join("db"))), (0o700, 0o400));
    assert_eq!(
        files.prepare(&spec(&["db", "api.key"]), false).await.unwrap().unwrap(),
        first
    );

    // A rotation: the running instance's directory is untouched, the next start gets the new value.
    files.set_versions([("db".to_string(), 2), ("api.key".to_string(), 3)].into());
    files.insert("db", 2, b"two");
    let second = files.prepare(&spec(&["db", "api.key"]), false).await.unwrap().unwrap();
    assert_ne!(second, first);
    assert_eq!(std::fs::read(second.join("db")).unwrap(), b"two");
    assert_eq!(std::fs::read(first.join("db")).unwrap(), b"one");

    // Containers: readable inside the mount by the image's user.
    let shared = files.prepare(&spec(&["db"]), true).await.unwrap().unwrap();
    assert_eq!((mode(&shared), mode(&shared.join("db"))), (0o755, 0o444));

    files.forget("f");
    assert!(!base.join("f").exists());
    files.clear();
    assert!(!base.exists());
}

#[tokio::test]
async fn a_secret_that_cannot_be_fetched_fails_the_start_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let files = SecretFiles::new(root.path().join("agent"), "n1");
    let err = files.prepare(&spec(&["db"]), false).await.unwrap_err();
    assert!(err.contains("no control-plane member is reachable"), "{err}");
}

#[test]
fn directories_of_agents_that_died_are_swept() {
    let root = tempfile::tempdir().unwrap();
    let dead = root.path().join("n1-999999999");
    std::fs::create_dir_all(&dead).unwrap();
    let alive = root.path().join(format!("n2-{}", std::process::id()));
    std::fs::create_dir_all(&alive).unwrap();
    let files = SecretFiles::new(root.path().join(format!("n1-{}", std::process::id())), "n1");
    files.sweep_dead_agents();
    assert!(!dead.exists());
    assert!(alive.exists());
}
