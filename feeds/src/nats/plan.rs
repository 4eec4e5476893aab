//! Validation of [`NatsSettings`] into a [`NatsPlan`]: servers, stream,
//! subject prefix, and one way to authenticate; every problem names its key.

use std::path::PathBuf;

use async_nats::ServerAddr;

use super::{HEARTBEAT_TOKEN, NatsSettings};

/// One problem with a `nats` table: the key (`nats.urls`, …) and what is wrong.
pub type SettingsProblem = (&'static str, String);

/// How a client proves who it is. Secrets are never printed.
#[derive(Clone)]
pub(super) enum Auth {
    None,
    UserPassword(String, String),
    Token(String),
    NKey(String),
    CredsFile(PathBuf),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::UserPassword(..) => "user/password",
            Self::Token(_) => "token",
            Self::NKey(_) => "nkey",
            Self::CredsFile(_) => "creds file",
        })
    }
}

/// Validated [`NatsSettings`].
#[derive(Debug, Clone)]
pub struct NatsPlan {
    pub(super) servers: Vec<ServerAddr>,
    pub(super) auth: Auth,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) tls_required: bool,
    /// The stream name.
    pub stream: String,
    /// The subject prefix (no trailing dot).
    pub subject_prefix: String,
}

impl NatsSettings {
    /// Checks every key; reports every problem, each naming its key.
    pub fn validate(&self) -> Result<NatsPlan, Vec<SettingsProblem>> {
        let mut problems: Vec<SettingsProblem> = Vec::new();
        let mut servers = Vec::new();
        if self.urls.is_empty() {
            problems.push(("nats.urls", "must list at least one server".into()));
        }
        for url in &self.urls {
            match url.parse::<ServerAddr>() {
                Ok(addr) => servers.push(addr),
                Err(error) => problems.push((
                    "nats.urls",
                    format!("has {url:?}, not a NATS server URL ({error})"),
                )),
            }
        }
        if self.stream.is_empty()
            || self.stream.len() > 64
            || !self
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            problems.push((
                "nats.stream",
                "must be 1 to 64 letters, digits, '-' or '_'".into(),
            ));
        }
        if !valid_prefix(&self.subject_prefix) {
            problems.push((
                "nats.subject_prefix",
                "must be dot-separated tokens without spaces, '*' or '>' (e.g. md.quote)".into(),
            ));
        }
        let auth = self.auth(&mut problems);
        if let Some(path) = &self.ca_file
            && !path.is_file()
        {
            problems.push(("nats.ca_file", format!("{} is not a file", path.display())));
        }
        if problems.is_empty() {
            Ok(NatsPlan {
                servers,
                auth,
                ca_file: self.ca_file.clone(),
                tls_required: self.tls_required,
                stream: self.stream.clone(),
                subject_prefix: self.subject_prefix.clone(),
            })
        } else {
            Err(problems)
        }
    }

    fn auth(&self, problems: &mut Vec<SettingsProblem>) -> Auth {
        let mut secret =
            |key: &'static str, value: &Option<String>, env: &Option<String>| match (value, env) {
                (Some(_), Some(_)) => {
                    problems.push((key, "and its `_env` form are both set; keep one".into()));
                    None
                }
                (Some(value), None) => Some(value.clone()),
                (None, Some(var)) => match std::env::var(var) {
                    Ok(value) if !value.is_empty() => Some(value),
                    _ => {
                        problems.push((
                            key,
                            format!("names environment variable {var}, which is unset or empty"),
                        ));
                        None
                    }
                },
                (None, None) => None,
            };
        let password = secret("nats.password", &self.password, &self.password_env);
        let token = secret("nats.token", &self.token, &self.token_env);
        let seed = secret("nats.nkey_seed", &self.nkey_seed, &self.nkey_seed_env);
        let methods = [
            self.user.is_some() || password.is_some(),
            token.is_some(),
            seed.is_some(),
            self.creds_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            problems.push((
                "nats.user",
                "choose one of user/password, token, nkey_seed and creds_file".into(),
            ));
            return Auth::None;
        }
        if let Some(path) = &self.creds_file {
            if !path.is_file() {
                problems.push((
                    "nats.creds_file",
                    format!("{} is not a file", path.display()),
                ));
            }
            return Auth::CredsFile(path.clone());
        }
        match (&self.user, password, token, seed) {
            (Some(user), Some(password), _, _) => Auth::UserPassword(user.clone(), password),
            (Some(_), None, _, _) => {
                problems.push(("nats.user", "needs `password` or `password_env`".into()));
                Auth::None
            }
            (None, Some(_), _, _) => {
                problems.push(("nats.password", "needs `user`".into()));
                Auth::None
            }
            (None, None, Some(token), _) => Auth::Token(token),
            (None, None, None, Some(seed)) => Auth::NKey(seed),
            (None, None, None, None) => Auth::None,
        }
    }
}

fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
        })
}

impl NatsPlan {
    /// The wildcard covering every quote subject: `<prefix>.>`.
    pub fn filter_subject(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }

    /// The publisher heartbeat subject: `<prefix>.$hb`.
    pub fn heartbeat_subject(&self) -> String {
        format!("{}.{HEARTBEAT_TOKEN}", self.subject_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_problems_name_their_keys() {
        let settings = NatsSettings {
            urls: vec!["nats://127.0.0.1:4222".into(), "::::".into()],
            stream: "bad.name".into(),
            subject_prefix: "md.*".into(),
            user: Some("u".into()),
            token: Some("t".into()),
            ..NatsSettings::default()
        };
        let problems = settings.validate().expect_err("invalid");
        let keys: Vec<&str> = problems.iter().map(|(key, _)| *key).collect();
        for key in [
            "nats.urls",
            "nats.stream",
            "nats.subject_prefix",
            "nats.user",
        ] {
            assert!(keys.contains(&key), "{key} missing in {problems:?}");
        }
        assert!(NatsSettings::default().validate().is_ok());
        let env = NatsSettings {
            token_env: Some("TICKGATE_TEST_UNSET_VARIABLE_XYZ".into()),
            ..NatsSettings::default()
        };
        let problems = env.validate().expect_err("unset env");
        assert_eq!(problems[0].0, "nats.token");
    }

    #[test]
    fn secrets_are_not_printed() {
        let settings = NatsSettings {
            user: Some("reader".into()),
            password: Some("hunter2".into()),
            ..NatsSettings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
        let plan = settings.validate().expect("valid");
        assert!(!format!("{plan:?}").contains("hunter2"));
    }
}
