//! Bearer tokens: loading the cluster's token and checking it on every call.
//!
//! Two tokens. The admin token (`--token-file`, or `FJORD_TOKEN`; with neither, the member
//! generates one into its data directory) guards everything: Admin, Raft between members, and
//! the Agent and Routes APIs. The join token (`--join-token-file`) is what node agents and lbs
//! carry: it opens the Agent and Routes APIs only, so a compromised node or lb cannot deploy,
//! remove or read secrets. Comparison is constant-time.

use rand::Rng;
use std::path::Path;
use std::sync::Arc;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    pub fn new(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.len() < 16 {
            return Err("the token must be at least 16 characters".into());
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be printable ASCII without spaces".into());
        }
        Ok(Token(value.into()))
    }

    /// A new random token: 32 bytes, hex.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::rng().random();
        Token(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into())
    }

    pub fn read_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading token file {}: {e}", path.display()))?;
        Token::new(&text).map_err(|e| format!("token file {}: {e}", path.display()))
    }

    /// Writes the token to `path`, readable by its owner only.
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(self.0.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Adds `authorization: Bearer <token>` to an outgoing request.
    pub fn attach<T>(&self, request: &mut Request<T>) {
        if let Ok(value) = MetadataValue::try_from(format!("Bearer {}", self.0)) {
            request.metadata_mut().insert("authorization", value);
        }
    }

    /// Checks an incoming request's bearer token.
    pub(crate) fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing bearer token: set FJORD_TOKEN or pass --token"))?;
        let presented = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("the authorization header must be 'Bearer <token>'"))?;
        if constant_time_eq(presented.trim().as_bytes(), self.0.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid token"))
        }
    }

    /// A tonic interceptor that refuses calls without this token.
    pub(crate) fn interceptor(&self) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
        let token = self.clone();
        move |request: Request<()>| token.check(&request).map(|()| request)
    }

    /// An interceptor that takes this token or, when given, the join token.
    pub(crate) fn interceptor_or(
        &self,
        join: Option<Token>,
    ) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
        let admin = self.clone();
        move |request: Request<()>| match admin.check(&request) {
            Ok(()) => Ok(request),
            Err(e) => match &join {
                Some(join) => join.check(&request).map(|()| request),
                None => Err(e),
            },
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_bearer_tokens() {
        let token = Token::generate();
        let mut good = Request::new(());
        token.attach(&mut good);
        assert!(token.check(&good).is_ok());
        let mut wrong = Request::new(());
        Token::generate().attach(&mut wrong);
        assert_eq!(token.check(&wrong).unwrap_err().code(), tonic::Code::Unauthenticated);
        assert_eq!(
            token.check(&Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn the_join_token_opens_only_what_it_is_given_for() {
        let admin = Token::generate();
        let join = Token::generate();
        let mut with_join = Request::new(());
        join.attach(&mut with_join);
        assert!(
            admin.interceptor()(with_join).is_err(),
            "the join token must not open Admin"
        );
        let mut with_join = Request::new(());
        join.attach(&mut with_join);
        assert!(admin.interceptor_or(Some(join.clone()))(with_join).is_ok());
        let mut with_admin = Request::new(());
        admin.attach(&mut with_admin);
        assert!(admin.interceptor_or(Some(join))(with_admin).is_ok());
    }

    #[test]
    fn refuses_short_tokens() {
        assert!(Token::new("short").is_err());
        assert!(Token::new("has spaces in it but is long").is_err());
    }
}
