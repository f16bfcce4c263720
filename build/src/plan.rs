//! What to build for one function: its image name, the source (a Dockerfile or a template
//! around a handler) and its build-args, from a fjord.yaml `build:` section or a stack file's
//! `lang`, `handler` and `build_args`.
//!
//! The `build:` section is read by the CLI only, never stored: [`split_build_section`] takes
//! it out of the text before the rest is parsed as a `FunctionSpec`, which the cluster keeps in
//! its Raft log and which has no business holding local paths.

use crate::context::Source;
use crate::{template, BuildError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// fjord.yaml's `build:` section. Paths are relative to the fjord.yaml's folder.
///
/// ```yaml
/// build:
///   lang: python3-http        # a template; without it, a Dockerfile build
///   handler: .                # the handler folder (default: the fjord.yaml's folder)
///   context: .                # without lang: the build context (default: the same)
///   dockerfile: Dockerfile    # without lang: the Dockerfile (default: in the context)
///   args: {BASE_IMAGE: python:3.12-slim}
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
}

/// Takes the `build:` section out of a fjord.yaml: the section, and the text without it (the
/// text itself when it has none, so parse errors keep their lines).
pub fn split_build_section(text: &str) -> Result<(Option<BuildSection>, std::borrow::Cow<'_, str>), BuildError> {
    let Ok(serde_yaml_ng::Value::Mapping(mut fields)) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) else {
        return Ok((None, text.into()));
    };
    let Some(section) = fields.remove("build") else {
        return Ok((None, text.into()));
    };
    let section: BuildSection =
        serde_yaml_ng::from_value(section).map_err(|e| BuildError::Settings(format!("build: {e}")))?;
    let rest = serde_yaml_ng::to_string(&fields).map_err(|e| BuildError::Settings(e.to_string()))?;
    Ok((Some(section), rest.into()))
}

/// One function's build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    pub function: String,
    /// The image to tag and push (`registry/name:tag`).
    pub image: String,
    pub source: Source,
    pub args: BTreeMap<String, String>,
}

impl BuildPlan {
    /// The plan for `function` with image `image` from a `build:` section (or none: the
    /// fjord.yaml folder's own Dockerfile); relative paths start at `base_dir`.
    pub fn new(function: &str, image: &str, section: &BuildSection, base_dir: &Path) -> Result<BuildPlan, BuildError> {
        if image.trim().is_empty() {
            return Err(BuildError::Settings(format!(
                "{function}: `image:` is missing: it names the image to build and push (registry/name:tag)"
            )));
        }
        let at = |p: &Option<PathBuf>| p.as_ref().map(|p| base_dir.join(p.strip_prefix(".").unwrap_or(p)));
        let source = match section.lang.as_deref() {
            Some(lang) => {
                let template = template::find(lang)?;
                let handler = at(&section.handler).unwrap_or_else(|| base_dir.to_path_buf());
                if template.uses_handler_dockerfile() {
                    let dockerfile = at(&section.dockerfile).unwrap_or_else(|| handler.join("Dockerfile"));
                    Source::Dockerfile {
                        context: handler,
                        dockerfile,
                    }
                } else {
                    if section.dockerfile.is_some() || section.context.is_some() {
                        return Err(BuildError::Settings(format!(
                            "{function}: build.dockerfile and build.context are for a Dockerfile build; \
                             template {lang} has its own (drop lang: to build your Dockerfile)"
                        )));
                    }
                    Source::Template { template, handler }
                }
            }
            None => {
                let context = at(&section.context)
                    .or_else(|| at(&section.handler))
                    .unwrap_or_else(|| base_dir.to_path_buf());
                let dockerfile = at(&section.dockerfile).unwrap_or_else(|| context.join("Dockerfile"));
                Source::Dockerfile { context, dockerfile }
            }
        };
        Ok(BuildPlan {
            function: function.to_string(),
            image: image.trim().to_string(),
            source,
            args: section.args.clone(),
        })
    }

    /// The same build with the image's tag replaced (`--tag`).
    pub fn with_tag(mut self, tag: &str) -> BuildPlan {
        self.image = format!("{}:{tag}", image_repository(&self.image));
        self
    }
}

/// An image reference without its tag: `127.0.0.1:5000/api:1` -> `127.0.0.1:5000/api`.
pub fn image_repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(colon) if !image[colon..].contains('/') => &image[..colon],
        _ => image,
    }
}

/// The tag of an image reference, `latest` when it has none.
pub fn image_tag(image: &str) -> &str {
    let repository = image_repository(image);
    image[repository.len()..]
        .strip_prefix(':')
        .filter(|t| !t.is_empty())
        .unwrap_or("latest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_section_is_taken_out_and_the_rest_left_for_the_spec() {
        let text = "name: api\nimage: r/api:1\nbuild:\n  lang: python3-http\n  handler: ./src\n  args:\n    BASE_IMAGE: py:local\n";
        let (section, rest) = split_build_section(text).unwrap();
        let section = section.unwrap();
        assert_eq!(section.lang.as_deref(), Some("python3-http"));
        assert_eq!(section.args["BASE_IMAGE"], "py:local");
        assert!(!rest.contains("build"), "{rest}");
        assert!(rest.contains("image: r/api:1"), "{rest}");
        let (none, same) = split_build_section("name: api\n").unwrap();
        assert!(none.is_none());
        assert_eq!(same, "name: api\n");
        let err = split_build_section("name: a\nbuild:\n  lnag: go\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("build: unknown field `lnag`"), "{err}");
    }

    #[test]
    fn plans_follow_lang_else_the_folder_dockerfile() {
        let base = Path::new("/p");
        let plan = BuildPlan::new("api", "r/api:1", &BuildSection::default(), base).unwrap();
        assert_eq!(
            plan.source,
            Source::Dockerfile {
                context: "/p".into(),
                dockerfile: "/p/Dockerfile".into()
            }
        );
        let section = BuildSection {
            lang: Some("dockerfile".into()),
            handler: Some("./fn".into()),
            ..Default::default()
        };
        let plan = BuildPlan::new("api", "r/api:1", &section, base).unwrap();
        assert_eq!(
            plan.source,
            Source::Dockerfile {
                context: "/p/fn".into(),
                dockerfile: "/p/fn/Dockerfile".into()
            }
        );
        let section = BuildSection {
            lang: Some("go".into()),
            ..Default::default()
        };
        assert!(matches!(
            BuildPlan::new("api", "r/api:1", &section, base).unwrap().source,
            Source::Template { .. }
        ));
        let section = BuildSection {
            lang: Some("cobol".into()),
            ..Default::default()
        };
        let err = BuildPlan::new("api", "r/api:1", &section, base)
            .unwrap_err()
            .to_string();
        assert!(err.contains("python3-http, node, go, rust, dockerfile"), "{err}");
        let err = BuildPlan::new("api", " ", &BuildSection::default(), base)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`image:` is missing"), "{err}");
    }

    #[test]
    fn tags_are_replaced_after_a_registry_port() {
        assert_eq!(image_repository("127.0.0.1:5000/api:1"), "127.0.0.1:5000/api");
        assert_eq!(image_repository("127.0.0.1:5000/api"), "127.0.0.1:5000/api");
        assert_eq!(image_tag("127.0.0.1:5000/api"), "latest");
        assert_eq!(image_tag("reg/api:v2"), "v2");
        let plan = BuildPlan::new("api", "127.0.0.1:5000/api:1", &BuildSection::default(), Path::new("/p")).unwrap();
        assert_eq!(plan.with_tag("v2").image, "127.0.0.1:5000/api:v2");
    }
}
