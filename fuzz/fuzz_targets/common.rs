// Shared by the import targets: write the input to a file, import it into an
// in-memory store, and check that a failed import wrote nothing.
use pipewise_ingest::{ImportOptions, NoProgress, Source, run_import};
use pipewise_store::{SqliteStore, Store};

pub fn import_bytes(file_name: &str, data: &[u8], make: impl FnOnce(std::path::PathBuf) -> Source) {
    let dir = std::env::temp_dir().join(format!("pipewise-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(file_name);
    std::fs::write(&path, data).unwrap();
    let mut store = SqliteStore::open_in_memory().unwrap();
    let before = store.content_digest().unwrap();
    let opts = ImportOptions { dry_run: false, max_errors: 20, as_of: "2025-01-01T00:00:00Z".into(), kind: "fuzz".into(), encoding: None };
    let report = run_import(&mut store, &[make(path)], &opts, &NoProgress).unwrap();
    if !report.ok() {
        assert_eq!(store.content_digest().unwrap(), before, "a failed import changed the database");
    }
}
