//! The build context sent to the engine: a tar of a folder, less what its `.dockerignore`
//! excludes, or a template's files with the handler folder under `function/`.
//!
//! `.dockerignore` is read the simple way: one pattern a line, `#` comments, `*` and `?`
//! within a path segment, `**` across segments, a leading `!` re-including, the last matching
//! line winning; a pattern that matches a folder excludes what it holds.

use crate::template::{Template, HANDLER_DIR};
use crate::BuildError;
use std::path::{Path, PathBuf};

/// The name the Dockerfile is sent under, whatever its own name and folder: the context may
/// exclude it, or it may live outside the context.
pub const DOCKERFILE_ENTRY: &str = ".fjord.Dockerfile";

/// What to build from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A folder and a Dockerfile (by default the folder's own).
    Dockerfile { context: PathBuf, dockerfile: PathBuf },
    /// A template's wrapper around a handler folder.
    Template {
        template: &'static Template,
        handler: PathBuf,
    },
}

/// The lines of a `.dockerignore`.
#[derive(Debug, Default, Clone)]
pub struct DockerIgnore {
    /// (pattern split into segments, re-include?)
    patterns: Vec<(Vec<String>, bool)>,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> DockerIgnore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (line, include) = match line.strip_prefix('!') {
                    Some(rest) => (rest.trim(), true),
                    None => (line, false),
                };
                let segments = line
                    .trim_start_matches("./")
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(str::to_string)
                    .collect();
                (segments, include)
            })
            .filter(|(segments, _): &(Vec<String>, bool)| !segments.is_empty())
            .collect();
        DockerIgnore { patterns }
    }

    /// The folder's `.dockerignore`, or none.
    pub fn of_dir(dir: &Path) -> Result<DockerIgnore, BuildError> {
        let path = dir.join(".dockerignore");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(DockerIgnore::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerIgnore::default()),
            Err(source) => Err(BuildError::Read { path, source }),
        }
    }

    /// Whether `path` (relative, `/`-separated) is left out: the last pattern matching it or
    /// one of its parent folders decides.
    pub fn excludes(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut excluded = false;
        for (pattern, include) in &self.patterns {
            let matched = (1..=segments.len()).any(|n| segments_match(pattern, &segments[..n]));
            if matched {
                excluded = !include;
            }
        }
        excluded
    }
}

fn segments_match(pattern: &[String], path: &[&str]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (None, None) => true,
        (Some((first, rest)), _) if first == "**" => (0..=path.len()).any(|skip| segments_match(rest, &path[skip..])),
        (Some((first, rest)), Some((segment, path_rest))) => {
            glob(first.as_bytes(), segment.as_bytes()) && segments_match(rest, path_rest)
        }
        _ => false,
    }
}

/// `*` and `?` within one segment.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// The tar for `source`, with its Dockerfile at [`DOCKERFILE_ENTRY`].
pub fn context_tar(source: &Source) -> Result<Vec<u8>, BuildError> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    match source {
        Source::Dockerfile { context, dockerfile } => {
            require_dir(context, "build context")?;
            let text = std::fs::read(dockerfile).map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => BuildError::Missing {
                    what: "Dockerfile",
                    path: dockerfile.clone(),
                },
                _ => BuildError::Read {
                    path: dockerfile.clone(),
                    source,
                },
            })?;
            append_dir(&mut tar, context, "", &DockerIgnore::of_dir(context)?)?;
            append_bytes(&mut tar, DOCKERFILE_ENTRY, &text)?;
        }
        Source::Template { template, handler } => {
            require_dir(handler, "handler folder")?;
            for file in template.wrapper_files() {
                if file.path == "Dockerfile" {
                    append_bytes(&mut tar, DOCKERFILE_ENTRY, file.contents)?;
                } else {
                    append_bytes(&mut tar, file.path, file.contents)?;
                }
            }
            append_dir(&mut tar, handler, HANDLER_DIR, &DockerIgnore::of_dir(handler)?)?;
        }
    }
    tar.into_inner().map_err(|e| BuildError::Context(e.to_string()))
}

fn require_dir(path: &Path, what: &'static str) -> Result<(), BuildError> {
    if path.is_dir() {
        Ok(())
    } else {
        Err(BuildError::Missing {
            what,
            path: path.to_path_buf(),
        })
    }
}

fn append_bytes(tar: &mut tar::Builder<Vec<u8>>, path: &str, contents: &[u8]) -> Result<(), BuildError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(contents.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, contents)
        .map_err(|e| BuildError::Context(format!("{path}: {e}")))
}

/// Appends what `dir` holds under `prefix`, sorted by name, skipping what `ignore` excludes
/// (matched against the path relative to `dir`).
fn append_dir(
    tar: &mut tar::Builder<Vec<u8>>,
    dir: &Path,
    prefix: &str,
    ignore: &DockerIgnore,
) -> Result<(), BuildError> {
    fn walk(
        tar: &mut tar::Builder<Vec<u8>>,
        root: &Path,
        relative: &str,
        prefix: &str,
        ignore: &DockerIgnore,
    ) -> Result<(), BuildError> {
        let dir = root.join(relative);
        let read = |source| BuildError::Read {
            path: dir.clone(),
            source,
        };
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(read)?
            .collect::<Result<_, _>>()
            .map_err(read)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = format!("{relative}{name}");
            if ignore.excludes(&path) {
                continue;
            }
            let file_type = entry.file_type().map_err(read)?;
            tar.append_path_with_name(entry.path(), format!("{prefix}{path}"))
                .map_err(|e| BuildError::Context(format!("{}: {e}", entry.path().display())))?;
            if file_type.is_dir() {
                walk(tar, root, &format!("{path}/"), prefix, ignore)?;
            }
        }
        Ok(())
    }
    walk(tar, dir, "", prefix, ignore)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar: &[u8]) -> Vec<String> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn dockerignore_patterns_exclude_by_segment_with_negation_and_folders() {
        let ignore = DockerIgnore::parse("# comment\n\n*.log\n!keep.log\nnode_modules\n**/cache\n./build/*.o\n");
        assert!(ignore.excludes("a.log"));
        assert!(!ignore.excludes("keep.log"));
        assert!(!ignore.excludes("src/a.log"), "* stays within a segment");
        assert!(ignore.excludes("node_modules"));
        assert!(ignore.excludes("node_modules/x/y.js"));
        assert!(ignore.excludes("deep/down/cache/file"));
        assert!(ignore.excludes("build/main.o"));
        assert!(!ignore.excludes("build/main.c"));
        assert!(!ignore.excludes("src/main.rs"));
    }

    #[test]
    fn a_folder_is_sent_less_its_ignored_files_with_the_dockerfile_under_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "secret.txt\ntarget\n").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("target/debug")).unwrap();
        std::fs::write(dir.path().join("target/debug/big"), "x").unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/main.rs"), "fn main() {}").unwrap();
        let tar = context_tar(&Source::Dockerfile {
            context: dir.path().to_path_buf(),
            dockerfile: dir.path().join("Dockerfile"),
        })
        .unwrap();
        assert_eq!(
            entries(&tar),
            [".dockerignore", "Dockerfile", "src", "src/main.rs", DOCKERFILE_ENTRY]
        );
    }

    #[test]
    fn a_template_build_sends_the_wrapper_and_the_handler_under_function() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("handler.py"), "def handle(e, c): return 'x'\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "*.pyc\n").unwrap();
        std::fs::write(dir.path().join("old.pyc"), "x").unwrap();
        let tar = context_tar(&Source::Template {
            template: crate::template::find("python3-http").unwrap(),
            handler: dir.path().to_path_buf(),
        })
        .unwrap();
        assert_eq!(
            entries(&tar),
            [
                DOCKERFILE_ENTRY,
                "index.py",
                "function/.dockerignore",
                "function/handler.py"
            ]
        );
    }

    #[test]
    fn a_missing_dockerfile_or_handler_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = context_tar(&Source::Dockerfile {
            context: dir.path().to_path_buf(),
            dockerfile: dir.path().join("Dockerfile"),
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no Dockerfile at {}", dir.path().join("Dockerfile").display())
        );
        let err = context_tar(&Source::Template {
            template: crate::template::find("node").unwrap(),
            handler: dir.path().join("nope"),
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no handler folder at {}", dir.path().join("nope").display())
        );
    }
}
