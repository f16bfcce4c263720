//! `fjord build`, `push`, `up` and `new`: building a function's image from source, for users
//! coming from `faas-cli`. The work is fjord-build's; this module reads flags and the file
//! (a fjord.yaml with its `build:` section, or a stack.yml's `lang`/`handler`/`build_args`),
//! finds registry logins, and prints progress on stderr.

use crate::connect::ConnectArgs;
use crate::output::outln;
use fjord_build::{BuildEvent, BuildPlan, BuildSection, Engine, PushEvent, RegistryLogin};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which functions: the file and `--filter`.
#[derive(clap::Args, Debug)]
pub struct SourceArgs {
    /// The fjord.yaml (its `build:` section, else the folder's Dockerfile) or an OpenFaaS
    /// stack file (`lang`, `handler`, `build_args`).
    #[arg(short, long, default_value = "fjord.yaml")]
    pub file: PathBuf,
    /// With a stack file: only these functions (names, or globs with *); repeatable or
    /// comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub filter: Vec<String>,
    /// Tag the image with TAG instead of the tag its `image:` names.
    #[arg(long)]
    pub tag: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Run every step again instead of using the engine's cache.
    #[arg(long)]
    pub no_cache: bool,
    /// A build-arg for the Dockerfile (a template's base image: BASE_IMAGE=...); repeatable,
    /// over the file's.
    #[arg(long = "build-arg", value_name = "K=V", value_parser = parse_build_arg)]
    pub build_args: Vec<(String, String)>,
}

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// Registry credentials as the node agent reads them: {"host:port": {"username": ..,
    /// "password": ..}}. Without it (or for a host it does not name), docker's config.json
    /// `auths`, then ECR tokens for an ECR registry.
    #[arg(long, value_name = "FILE")]
    pub registry_auth_file: Option<PathBuf>,
}

fn parse_build_arg(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?}: expected NAME=VALUE")),
    }
}

/// The builds the file asks for, in its order.
fn plans(source: &SourceArgs, extra_args: &[(String, String)]) -> anyhow::Result<Vec<BuildPlan>> {
    let file = &source.file;
    let shown = file.display();
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("reading {shown}: {e}"))?;
    let base_dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = file.file_name().and_then(|n| n.to_str());
    let mut plans = Vec::new();
    if fjord_openfaas::stack::is_stack_file(file_name, &text) {
        let stack = fjord_openfaas::stack::Stack::parse(&text, &|name| std::env::var(name).ok())
            .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        for name in stack
            .select(&source.filter)
            .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?
        {
            let settings = stack
                .build_settings(name)
                .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
            let section = BuildSection {
                lang: settings.lang,
                handler: settings.handler.map(PathBuf::from),
                args: settings.build_args,
                ..Default::default()
            };
            let image = settings.image.unwrap_or_default();
            plans.push(BuildPlan::new(name, &image, &section, &base_dir).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?);
        }
    } else {
        if !source.filter.is_empty() {
            anyhow::bail!(
                "--filter selects functions of an OpenFaaS stack file; {shown} is a fjord.yaml (one function)"
            );
        }
        let (section, rest) =
            fjord_build::plan::split_build_section(&text).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        let spec = fjord_core::FunctionSpec::from_yaml(&rest).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        let plan = BuildPlan::new(&spec.name, &spec.image, &section.unwrap_or_default(), &base_dir)
            .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        plans.push(plan);
    }
    Ok(plans
        .into_iter()
        .map(|mut plan| {
            plan.args.extend(extra_args.iter().cloned());
            match &source.tag {
                Some(tag) => plan.with_tag(tag),
                None => plan,
            }
        })
        .collect())
}

/// `fjord build`: builds each function's image, its steps on stderr.
pub async fn build(args: &BuildArgs) -> anyhow::Result<Vec<BuildPlan>> {
    let plans = plans(&args.source, &args.build_args)?;
    let engine = Engine::connect()?;
    for plan in &plans {
        eprintln!("building {} as {}", plan.function, plan.image);
        engine
            .build(plan, args.no_cache, |event| match event {
                BuildEvent::Step(line) => eprintln!("{line}"),
                BuildEvent::Output(line) => eprintln!("  {line}"),
            })
            .await?;
        outln!("built {}", plan.image);
    }
    Ok(plans)
}

/// `fjord push`: pushes each function's image with its registry's credentials.
pub async fn push(source: &SourceArgs, push: &PushArgs) -> anyhow::Result<()> {
    let plans = plans(source, &[])?;
    push_images(&plans, push).await
}

async fn push_images(plans: &[BuildPlan], push: &PushArgs) -> anyhow::Result<()> {
    let auth_file = match &push.registry_auth_file {
        Some(path) => fjord_node_agent::runtime::docker::load_registry_auth(path)?,
        None => HashMap::new(),
    };
    let engine = Engine::connect()?;
    for plan in plans {
        let login = login_for(&plan.image, &auth_file).await?;
        let mut progress = PushProgress::new();
        let digest = engine
            .push(&plan.image, login.as_ref(), |event| progress.show(event))
            .await?;
        progress.finish();
        match digest {
            Some(digest) => outln!("pushed {} ({digest})", plan.image),
            None => outln!("pushed {}", plan.image),
        }
    }
    Ok(())
}

/// The login for the registry `image` names: the auth file's, then docker's config.json, then
/// an ECR token for an ECR registry.
async fn login_for(
    image: &str,
    auth_file: &fjord_node_agent::runtime::docker::RegistryAuth,
) -> anyhow::Result<Option<RegistryLogin>> {
    let host = fjord_node_agent::runtime::docker::registry_host(image).unwrap_or("index.docker.io");
    if let Some(c) = auth_file.get(host) {
        return Ok(Some(RegistryLogin {
            username: c.username.clone(),
            password: c.password.clone(),
            server: host.to_string(),
        }));
    }
    if let Some(path) = fjord_build::credentials::docker_config_path() {
        if let Some(login) = fjord_build::credentials::docker_config_login(&path, host)? {
            return Ok(Some(login));
        }
    }
    if fjord_aws::ecr_registry(host).is_some() {
        let (username, password) = fjord_node_agent::runtime::docker::Ecr::new(None)
            .credentials(host)
            .await?;
        return Ok(Some(RegistryLogin {
            username,
            password,
            server: host.to_string(),
        }));
    }
    Ok(None)
}

/// A bar per layer on a terminal, a line per layer state otherwise.
struct PushProgress {
    bars: Option<(indicatif::MultiProgress, HashMap<String, indicatif::ProgressBar>)>,
    last: HashMap<String, String>,
}

impl PushProgress {
    fn new() -> PushProgress {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| (indicatif::MultiProgress::new(), HashMap::new()));
        PushProgress {
            bars,
            last: HashMap::new(),
        }
    }

    fn show(&mut self, event: PushEvent) {
        match (event, &mut self.bars) {
            (PushEvent::Status(line), Some((multi, _))) => {
                let _ = multi.println(line);
            }
            (PushEvent::Status(line), None) => eprintln!("{line}"),
            (
                PushEvent::Layer {
                    id,
                    status,
                    current,
                    total,
                },
                Some((multi, bars)),
            ) => {
                let bar = bars.entry(id.clone()).or_insert_with(|| {
                    let bar = multi.add(indicatif::ProgressBar::new(total.max(1)));
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("{prefix} {msg:<22} [{bar:30}] {bytes}/{total_bytes}")
                            .expect("a valid template")
                            .progress_chars("=> "),
                    );
                    bar.set_prefix(id.clone());
                    bar
                });
                if total > 0 {
                    bar.set_length(total);
                    bar.set_position(current);
                }
                bar.set_message(status.clone());
                if status == "Pushed" || status == "Layer already exists" || status.starts_with("Mounted from") {
                    bar.finish();
                }
            }
            (PushEvent::Layer { id, status, .. }, None) => {
                if self.last.get(&id) != Some(&status) {
                    eprintln!("{id}: {status}");
                    self.last.insert(id, status);
                }
            }
        }
    }

    fn finish(self) {
        if let Some((multi, bars)) = self.bars {
            bars.values().for_each(|b| b.finish());
            let _ = multi.clear();
        }
    }
}

/// `fjord up`: build, push, deploy, and wait for the functions to be ready.
pub async fn up(connect: &ConnectArgs, args: &BuildArgs, push: &PushArgs, timeout: Duration) -> anyhow::Result<()> {
    let plans = build(args).await?;
    push_images(&plans, push).await?;
    crate::functions::deploy(
        connect,
        &args.source.file,
        &args.source.filter,
        false,
        Some(timeout),
        args.source.tag.as_deref(),
    )
    .await
}

/// `fjord new NAME --lang L`: the template's handler in DIR (default NAME) and a fjord.yaml
/// that builds it.
pub fn new(name: &str, lang: &str, dir: Option<&Path>) -> anyhow::Result<()> {
    let template = fjord_build::template::find(lang)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    let spec_path = dir.join("fjord.yaml");
    if spec_path.exists() {
        anyhow::bail!(
            "{} exists already; remove it or choose another --dir",
            spec_path.display()
        );
    }
    let spec = format!(
        "name: {name}\n\
         # The image `fjord build` tags and `fjord push` pushes: registry/name:tag.\n\
         image: {name}:latest\n\
         build:\n  lang: {lang}\n  handler: .\n"
    );
    let (_, rest) = fjord_build::plan::split_build_section(&spec)?;
    fjord_core::FunctionSpec::from_yaml(&rest).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    for file in template.scaffold_files() {
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| anyhow::anyhow!("creating {}: {e}", parent.display()))?;
        }
        if path.exists() {
            anyhow::bail!("{} exists already; remove it or choose another --dir", path.display());
        }
        std::fs::write(&path, file.contents).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    std::fs::write(dir.join(".dockerignore"), "fjord.yaml\n.dockerignore\n")?;
    std::fs::write(&spec_path, spec).map_err(|e| anyhow::anyhow!("writing {}: {e}", spec_path.display()))?;
    outln!(
        "created {name} in {} from template {lang}; set image: in {}, then `fjord up -f {}`",
        dir.display(),
        spec_path.display(),
        spec_path.display()
    );
    Ok(())
}
