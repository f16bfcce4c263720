//! The templates `lang:` names, embedded in the binary so a build works from any directory.
//!
//! A template is a folder of `templates/<lang>/` in the repository: a Dockerfile and the small
//! HTTP server that wraps the user's handler (port 8080 from `PORT`, `GET /_/health` answered,
//! `USER app`), and under `function/` the handler that `fjord new` scaffolds. A build sends the
//! template's own files at the root of the context and the user's handler folder as
//! `function/`. The `dockerfile` template has no files of its own: the handler folder is the
//! context and its Dockerfile is the build.

/// One embedded file, by its path inside the template's folder.
#[derive(Debug, Clone, Copy)]
pub struct TemplateFile {
    pub path: &'static str,
    pub contents: &'static [u8],
}

/// A template, by the name `lang:` gives it.
#[derive(Debug)]
pub struct Template {
    pub lang: &'static str,
    /// What the handler is, in a few words (shown in the list of templates).
    pub summary: &'static str,
    /// The build-args naming its base images, with their defaults.
    pub base_args: &'static [(&'static str, &'static str)],
    files: &'static [TemplateFile],
}

/// The folder of a template's files that is the user's handler.
pub const HANDLER_DIR: &str = "function/";

macro_rules! files {
    ($lang:literal: $($path:literal),* $(,)?) => {
        &[$(TemplateFile {
            path: $path,
            contents: include_bytes!(concat!("../../templates/", $lang, "/", $path)),
        }),*]
    };
}

/// Every template, by name.
pub const TEMPLATES: &[Template] = &[
    Template {
        lang: "python3-http",
        summary: "function/handler.py: handle(event, context), requirements.txt installed with pip",
        base_args: &[("BASE_IMAGE", "python:3.12-slim")],
        files: files!("python3-http": "Dockerfile", "index.py", "function/handler.py", "function/requirements.txt"),
    },
    Template {
        lang: "node",
        summary: "function/handler.js: async (event, context) => result, package.json installed with npm",
        base_args: &[("BASE_IMAGE", "node:20-slim")],
        files: files!("node": "Dockerfile", "index.js", "function/handler.js", "function/package.json"),
    },
    Template {
        lang: "go",
        summary: "function/handler.go: Handle(http.ResponseWriter, *http.Request)",
        base_args: &[("BUILDER_IMAGE", "golang:1.23"), ("BASE_IMAGE", "debian:bookworm-slim")],
        files: files!("go": "Dockerfile", "go.mod", "main.go", "function/go.mod", "function/handler.go"),
    },
    Template {
        lang: "rust",
        summary: "function/src/lib.rs: handle(Request) -> Response, standard library only",
        base_args: &[
            ("BUILDER_IMAGE", "rust:1.85-slim"),
            ("BASE_IMAGE", "debian:bookworm-slim"),
        ],
        files: files!("rust": "Dockerfile", "main/Cargo.toml", "main/src/main.rs",
            "function/Cargo.toml", "function/src/lib.rs"),
    },
    Template {
        lang: "dockerfile",
        summary: "the handler folder's own Dockerfile, built as it is",
        base_args: &[],
        files: files!("dockerfile": "function/Dockerfile", "function/server.py"),
    },
];

/// A `lang:` no template has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no template {lang:?}; the templates are: {}", template_names().join(", "))]
pub struct UnknownLang {
    pub lang: String,
}

/// The templates' names, in the order listed.
pub fn template_names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|t| t.lang).collect()
}

/// The template `lang` names.
pub fn find(lang: &str) -> Result<&'static Template, UnknownLang> {
    TEMPLATES
        .iter()
        .find(|t| t.lang == lang)
        .ok_or_else(|| UnknownLang { lang: lang.to_string() })
}

impl PartialEq for Template {
    fn eq(&self, other: &Template) -> bool {
        self.lang == other.lang
    }
}

impl Eq for Template {}

impl Template {
    /// Whether the handler folder is built with its own Dockerfile (the `dockerfile` template).
    pub fn uses_handler_dockerfile(&self) -> bool {
        !self.wrapper_files().any(|f| f.path == "Dockerfile")
    }

    /// The files sent beside the handler: the Dockerfile and the wrapper.
    pub fn wrapper_files(&self) -> impl Iterator<Item = &TemplateFile> {
        self.files.iter().filter(|f| !f.path.starts_with(HANDLER_DIR))
    }

    /// The handler `fjord new` writes, by path inside the handler folder.
    pub fn scaffold_files(&self) -> impl Iterator<Item = TemplateFile> + '_ {
        self.files.iter().filter_map(|f| {
            f.path.strip_prefix(HANDLER_DIR).map(|path| TemplateFile {
                path,
                contents: f.contents,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files_under(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                files_under(&entry.path(), &format!("{name}/"), out);
            } else {
                out.push(name);
            }
        }
    }

    #[test]
    fn every_file_of_the_templates_folder_is_embedded_and_every_folder_is_a_template() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        let mut folders: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        folders.sort();
        let mut names = template_names();
        names.sort();
        assert_eq!(folders, names);
        for template in TEMPLATES {
            let mut on_disk = Vec::new();
            files_under(&root.join(template.lang), "", &mut on_disk);
            on_disk.sort();
            let mut embedded: Vec<String> = template.files.iter().map(|f| f.path.to_string()).collect();
            embedded.sort();
            assert_eq!(on_disk, embedded, "templates/{}", template.lang);
        }
    }

    #[test]
    fn every_template_but_dockerfile_has_a_dockerfile_running_as_app_with_its_base_as_build_args() {
        for template in TEMPLATES {
            let dockerfile = template
                .wrapper_files()
                .chain(template.files.iter().filter(|f| f.path == "function/Dockerfile"))
                .find(|f| f.path.ends_with("Dockerfile"))
                .map(|f| std::str::from_utf8(f.contents).unwrap())
                .unwrap_or_else(|| panic!("{} has no Dockerfile", template.lang));
            assert!(dockerfile.contains("\nUSER app\n"), "{}", template.lang);
            assert!(dockerfile.contains("PORT=8080"), "{}", template.lang);
            for (arg, default) in template.base_args {
                assert!(
                    dockerfile.contains(&format!("ARG {arg}={default}\n")),
                    "{} {arg}",
                    template.lang
                );
            }
        }
        assert!(find("dockerfile").unwrap().uses_handler_dockerfile());
        assert!(!find("python3-http").unwrap().uses_handler_dockerfile());
    }

    #[test]
    fn an_unknown_lang_lists_the_templates() {
        let err = find("cobol").unwrap_err().to_string();
        assert_eq!(
            err,
            "no template \"cobol\"; the templates are: python3-http, node, go, rust, dockerfile"
        );
    }
}
