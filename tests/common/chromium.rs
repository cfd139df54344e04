//! Pages as real headless Chromium (Debian's `chromium`) builds them: the DOM it dumps, and
//! its text by section. Chromium missing is a failure with the fix, never a skip.

use std::path::Path;
use std::process::Command;

/// The DOM Chromium builds from the HTML file `page` (`profile`: a directory of the test's own
/// for Chromium's profile).
pub fn dom(page: &Path, profile: &Path) -> String {
    // --no-sandbox: tests run as root in containers; the page is our own file, with no script.
    let st = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (apt-get install chromium; scripts/test.sh does)");
    assert!(
        st.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    String::from_utf8_lossy(&st.stdout).into_owned()
}

/// The text of a DOM dump (tags dropped, entities of our numbers are plain), whitespace folded.
pub fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The part of `dom` from the element with `id` on (to the next section).
pub fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let rest = &dom[at..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}
