//! Rendering notices: minijinja templates (a built-in English default; `template_dir` may
//! override `subject.txt`, `body.txt` and add `body.html`) and lettre messages with From,
//! Reply-To, To, Date, Message-ID, `Auto-Submitted: auto-generated`, and UTF-8 headers encoded as
//! RFC 2047 asks. Templates see addresses, owners and what was found; never a password or a hash
//! (the state holds none).

use crate::error::{Error, Result};
use lettre::Message;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use serde::Serialize;
use std::path::Path;

/// The built-in customer notice. Each sentence is one line (the reader's mail program wraps it
/// to its window): a line never breaks mid-sentence, whatever the width.
const SUBJECT: &str = "Security notice: {{ addresses | length }} mailbox{% if addresses | length != 1 %}es{% endif %} of {{ owner or contact }} with leaked credentials";
const BODY: &str = r#"Hello{% if owner %} {{ owner }}{% endif %},

We check the mail accounts we host against public collections of leaked passwords: the lists spammers use to log in to mailboxes and send spam through them.
These accounts of yours turned up:

{% for a in addresses -%}
* {{ a.email }}{% if a.suspended %} (login currently locked){% endif %}
{%- if a.outbound_suspended %}
  OUTGOING MAIL OF THIS ACCOUNT IS SUSPENDED: change its password and it is restored within a day (at the next nightly check), or reply to this message.{% endif %}
{%- for f in a.findings %}
  - {{ f.text }}
{%- endfor %}

{% endfor -%}
What to do:
1. Change the password of each account above now, to one you use nowhere else.
2. If you used the same password on other sites, change it there too: it is public.
3. Where the current password itself was leaked, outgoing mail of that account may be suspended until the password is changed, to stop spam being sent in your name.

We never ask for your password by email.
If you have questions, reply to this message.
"#;

/// The operator's message of a run.
const OPERATOR_SUBJECT: &str = "breach-audit: {{ items | length }} item{% if items | length != 1 %}s{% endif %} need attention";
const OPERATOR_BODY: &str = r#"breach-audit could not leave these to the customers:

{% for i in items -%}
* {{ i }}
{% endfor %}
{{ summary }}
The attached report.html is the operator's page of the last runs (`breach-audit report` makes it
again); the audit's full record is in its state database and out/run.json.
"#;

/// The operator's item about a server's `serve`, when its verdicts are stuck (no write for an
/// hour while a serve runs there) or went through the spool since the last run.
pub fn serve_item(server: &str, r: &crate::serve::ServeReport) -> Option<String> {
    r.noteworthy().then(|| {
        let tag = if server.is_empty() {
            String::new()
        } else {
            format!("[{server}] ")
        };
        format!("{tag}login verdicts: {}", r.text())
    })
}

/// One address in a notice.
#[derive(Serialize)]
pub struct NoticeAddress {
    pub email: String,
    pub domain: String,
    pub severity: String,
    pub suspended: bool,
    /// breach-audit suspended its outbound mail.
    pub outbound_suspended: bool,
    pub findings: Vec<NoticeFinding>,
}

/// One finding, with its words for the customer.
#[derive(Serialize)]
pub struct NoticeFinding {
    pub kind: String,
    pub text: String,
    /// The finding as in the check records (kind, count, source...).
    pub detail: serde_json::Value,
}

/// Words for a finding (the JSON of a check record's finding): whole sentences. `locked`: the
/// account's login is locked (suspended in its store), so nobody can log in with it today.
pub fn finding_text(f: &serde_json::Value, locked: bool) -> String {
    let n = f.get("count").and_then(|c| c.as_u64()).unwrap_or(0);
    let count = if n == 1 {
        "once".to_string()
    } else {
        format!("{n} times")
    };
    match f.get("kind").and_then(|k| k.as_str()).unwrap_or("") {
        "current_password_leaked" if locked => {
            "Its current password is in a public list of leaked passwords for this address. The login is locked now, but anyone can log in with that password once it is unlocked: change the password before the account is unlocked.".into()
        }
        "current_password_leaked" => {
            "Its current password is in a public list of leaked passwords for this address: anyone can log in with it.".into()
        }
        "password_pwned" if f.get("source").and_then(|s| s.as_str()) == Some("combolist") => {
            format!("Its password appears in public leak lists ({count}), so it is easy to guess.")
        }
        "password_pwned" => format!(
            "Its password is among passwords known from data breaches (seen {count}), so it is easy to guess."
        ),
        "credentials_leaked" => format!(
            "This address appears with a password in public leak lists ({count}). If that password is used anywhere, change it."
        ),
        other => format!("We could not check this account's password ({other})."),
    }
}

/// The rendered parts of a message.
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// An HTML file attached after the text (name, content): the operator's page.
    pub attachment: Option<(String, String)>,
}

/// Templates: the built-in ones, or those in `dir`.
pub struct Templates {
    env: minijinja::Environment<'static>,
    html: bool,
}

impl Templates {
    pub fn load(dir: Option<&Path>) -> Result<Templates> {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        let mut set = |name: &'static str, text: String| {
            env.add_template_owned(name, text)
                .map_err(|e| Error::Usage(format!("template {name}: {e}")))
        };
        let read = |name: &str| -> Result<Option<String>> {
            let Some(d) = dir else { return Ok(None) };
            match std::fs::read_to_string(d.join(name)) {
                Ok(t) => Ok(Some(t)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(d.join(name), e)),
            }
        };
        set(
            "subject.txt",
            read("subject.txt")?.unwrap_or(SUBJECT.into()),
        )?;
        set("body.txt", read("body.txt")?.unwrap_or(BODY.into()))?;
        set("operator-subject.txt", OPERATOR_SUBJECT.into())?;
        set("operator-body.txt", OPERATOR_BODY.into())?;
        let html = match read("body.html")? {
            Some(t) => {
                set("body.html", t)?;
                true
            }
            None => false,
        };
        Ok(Templates { env, html })
    }

    fn render(&self, name: &str, ctx: &minijinja::Value) -> Result<String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| Error::Usage(format!("template {name}: {e}")))
    }

    /// A customer's notice.
    pub fn notice(
        &self,
        contact: &str,
        owner: Option<&str>,
        addresses: &[NoticeAddress],
    ) -> Result<Rendered> {
        let addresses = minijinja::Value::from(minijinja::value::Serde(addresses));
        let ctx = minijinja::context! { contact, owner, addresses };
        Ok(Rendered {
            subject: self.render("subject.txt", &ctx)?.trim().to_string(),
            text: self.render("body.txt", &ctx)?,
            html: if self.html {
                Some(self.render("body.html", &ctx)?)
            } else {
                None
            },
            attachment: None,
        })
    }

    /// The operator's message: `items` to act on, and `summary`, the last run's numbers.
    pub fn operator(&self, items: &[String], summary: &str) -> Result<Rendered> {
        let items = minijinja::Value::from(minijinja::value::Serde(items));
        let ctx = minijinja::context! { items, summary };
        Ok(Rendered {
            subject: self
                .render("operator-subject.txt", &ctx)?
                .trim()
                .to_string(),
            text: self.render("operator-body.txt", &ctx)?,
            html: None,
            attachment: None,
        })
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): autoresponders must not answer it.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".into())
    }
}

/// Parse an address from the config or the state.
pub fn mailbox(s: &str, what: &str) -> Result<Mailbox> {
    s.parse()
        .map_err(|e| Error::Usage(format!("{what} {s:?} is not a mail address ({e})")))
}

/// Build the message. `message_id` is without angle brackets.
pub fn build(
    from: &Mailbox,
    reply_to: Option<&Mailbox>,
    to: &Mailbox,
    message_id: &str,
    r: &Rendered,
) -> Result<Message> {
    let mut b = Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(r.subject.clone())
        .date_now()
        .message_id(Some(format!("<{message_id}>")))
        .header(AutoSubmitted);
    if let Some(rt) = reply_to {
        b = b.reply_to(rt.clone());
    }
    let plain = || {
        SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(r.text.clone())
    };
    let alternative =
        |html: &String| MultiPart::alternative_plain_html(r.text.clone(), html.clone());
    let built = match (&r.attachment, &r.html) {
        (None, None) => b.singlepart(plain()),
        (None, Some(html)) => b.multipart(alternative(html)),
        (Some((name, content)), html) => {
            let body = match html {
                None => MultiPart::mixed().singlepart(plain()),
                Some(html) => MultiPart::mixed().multipart(alternative(html)),
            };
            b.multipart(
                body.singlepart(
                    lettre::message::Attachment::new(name.clone())
                        .body(content.clone(), ContentType::TEXT_HTML),
                ),
            )
        }
    };
    built.map_err(|e| Error::Usage(format!("cannot build the message to {to}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_locked_account_is_not_told_that_anyone_can_log_in_now() {
        let f = json!({"kind": "current_password_leaked"});
        assert!(finding_text(&f, false).contains("anyone can log in with it."));
        let locked = finding_text(&f, true);
        assert!(!locked.contains("anyone can log in with it"), "{locked}");
        assert!(locked.contains("locked now") && locked.contains("once it is unlocked"));
    }

    #[test]
    fn finding_texts_are_whole_sentences() {
        for f in [
            json!({"kind": "current_password_leaked"}),
            json!({"kind": "password_pwned", "count": 1, "source": "combolist"}),
            json!({"kind": "password_pwned", "count": 43960, "source": "hibp"}),
            json!({"kind": "credentials_leaked", "count": 2}),
            json!({"kind": "unverifiable:{X}"}),
        ] {
            for locked in [false, true] {
                let t = finding_text(&f, locked);
                assert!(t.starts_with(|c: char| c.is_uppercase()), "{t}");
                assert!(t.ends_with('.') && !t.contains('\n'), "{t}");
            }
        }
    }

    #[test]
    fn the_default_notice_breaks_lines_only_between_sentences() {
        let t = Templates::load(None).unwrap();
        let a = |email: &str, suspended, outbound_suspended| NoticeAddress {
            email: email.into(),
            domain: "blog.example".into(),
            severity: "critical".into(),
            suspended,
            outbound_suspended,
            findings: vec![NoticeFinding {
                kind: "current_password_leaked".into(),
                text: finding_text(&json!({"kind": "current_password_leaked"}), suspended),
                detail: json!({"kind": "current_password_leaked"}),
            }],
        };
        let r = t
            .notice(
                "carl@owner.example",
                Some("carl"),
                &[
                    a("editor@blog.example", true, false),
                    a("writer@blog.example", false, true),
                ],
            )
            .unwrap();
        for line in r.text.lines() {
            let l = line.trim_end();
            assert_eq!(l, line, "trailing blank: {line:?}");
            let ends_a_sentence = l.is_empty()
                || [".", ":", ",", ")"].iter().any(|e| l.ends_with(e))
                || l.starts_with("* ");
            assert!(
                ends_a_sentence,
                "a line broken mid-sentence: {line:?}\n{}",
                r.text
            );
        }
        assert!(
            r.text
                .contains("* editor@blog.example (login currently locked)\n")
        );
        assert!(
            r.text
                .contains("OUTGOING MAIL OF THIS ACCOUNT IS SUSPENDED: change its password")
        );
    }
}
