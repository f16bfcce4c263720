//! The XML of EC2's answers, read into a small tree of [`Element`]s.
//!
//! EC2's Query API answers in plain XML: elements and text, one default namespace, no mixed
//! content that matters. This keeps only what a reader needs (local names, unescaped text,
//! children in order) and drops attributes, comments and declarations. Lists come as a `fooSet`
//! element holding `item`s; [`Element::items`] walks one. Look-ups go to direct children only,
//! because EC2 reuses names at several depths (an instance's `privateIpAddress` and its network
//! interfaces' `privateIpAddress`es).

use std::fmt;

/// One element: its local name (no namespace prefix), its text, and its child elements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Element {
    pub name: String,
    text: String,
    children: Vec<Element>,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XmlError(String);

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed XML: {}", self.0)
    }
}

impl std::error::Error for XmlError {}

impl Element {
    /// The element's text with surrounding white space trimmed (empty for a container).
    pub fn text(&self) -> &str {
        self.text.trim()
    }

    /// The first direct child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first direct child named `name`, when it has any.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(Element::text).filter(|t| !t.is_empty())
    }

    /// The element at `path` of direct children below this one (`["placement",
    /// "availabilityZone"]`).
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |element, name| element.child(name))
    }

    /// The `item`s of the list child `set` (`reservationSet`, `instancesSet`...); none when the
    /// list is absent or empty.
    pub fn items<'a>(&'a self, set: &str) -> impl Iterator<Item = &'a Element> + 'a {
        self.child(set)
            .into_iter()
            .flat_map(|s| s.children.iter())
            .filter(|c| c.name == "item")
    }
}

/// Reads a whole document into its root element.
pub(crate) fn parse(document: &str) -> Result<Element, XmlError> {
    let mut open: Vec<Element> = Vec::new();
    let mut root = None;
    for token in xmlparser::Tokenizer::from(document) {
        let token = token.map_err(|e| XmlError(e.to_string()))?;
        match token {
            xmlparser::Token::ElementStart { local, .. } => {
                if root.is_some() {
                    return Err(XmlError("content after the root element".into()));
                }
                open.push(Element {
                    name: local.as_str().to_string(),
                    ..Element::default()
                });
            }
            xmlparser::Token::ElementEnd { end, .. } => {
                let closed = match end {
                    xmlparser::ElementEnd::Open => continue,
                    xmlparser::ElementEnd::Empty => open.pop(),
                    xmlparser::ElementEnd::Close(_, local) => {
                        let element = open.pop();
                        if let Some(e) = &element {
                            if e.name != local.as_str() {
                                return Err(XmlError(format!("<{}> closed by </{}>", e.name, local.as_str())));
                            }
                        }
                        element
                    }
                };
                let closed = closed.ok_or_else(|| XmlError("an end tag without a start".into()))?;
                match open.last_mut() {
                    Some(parent) => parent.children.push(closed),
                    None => root = Some(closed),
                }
            }
            xmlparser::Token::Text { text } => {
                if let Some(element) = open.last_mut() {
                    unescape_into(text.as_str(), &mut element.text)?;
                }
            }
            xmlparser::Token::Cdata { text, .. } => {
                if let Some(element) = open.last_mut() {
                    element.text.push_str(text.as_str());
                }
            }
            _ => {}
        }
    }
    if let Some(unclosed) = open.last() {
        return Err(XmlError(format!("<{}> is not closed", unclosed.name)));
    }
    root.ok_or_else(|| XmlError("no root element".into()))
}

/// Appends `text` to `out` with XML's predefined entities and character references replaced.
fn unescape_into(text: &str, out: &mut String) -> Result<(), XmlError> {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .find(';')
            .ok_or_else(|| XmlError(format!("unterminated entity in {text:?}")))?;
        let entity = &after[..semi];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| XmlError(format!("unknown entity &{entity};")))?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_elements_text_and_lists() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
            <Answer xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
                <!-- a comment -->
                <name>  first  </name>
                <thingSet>
                    <item><id>a</id></item>
                    <item><id>b</id><inner><id>deep</id></inner></item>
                    <other/>
                </thingSet>
                <empty/>
            </Answer>"#;
        let root = parse(doc).expect("parses");
        assert_eq!(root.name, "Answer");
        assert_eq!(root.child_text("name"), Some("first"));
        let ids: Vec<_> = root.items("thingSet").filter_map(|i| i.child_text("id")).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(root.items("missingSet").count(), 0);
        assert_eq!(root.child_text("empty"), None);
        assert!(root.child("empty").is_some());
        let second = root.items("thingSet").nth(1).unwrap();
        assert_eq!(second.at(&["inner", "id"]).map(Element::text), Some("deep"));
        assert_eq!(root.at(&["thingSet", "nope"]), None);
    }

    #[test]
    fn unescapes_entities_and_keeps_cdata_as_is() {
        let root =
            parse("<m>a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos; &#65;&#x42; <![CDATA[<raw> &amp;]]></m>").unwrap();
        assert_eq!(root.text(), "a <b> & \"c\" 'd' AB <raw> &amp;");
    }

    #[test]
    fn namespace_prefixes_are_dropped() {
        let root = parse(r#"<ec2:Answer xmlns:ec2="urn:x"><ec2:id>i-1</ec2:id></ec2:Answer>"#).unwrap();
        assert_eq!(root.name, "Answer");
        assert_eq!(root.child_text("id"), Some("i-1"));
    }

    #[test]
    fn refuses_broken_documents() {
        for bad in [
            "",
            "not xml",
            "<a><b></a>",
            "<a>",
            "<a></a><b></b>",
            "<a>&nope;</a>",
            "<a>&amp</a>",
            "<a>&#xZZ;</a>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
