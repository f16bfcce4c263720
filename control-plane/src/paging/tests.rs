use super::*;

fn items(names: &[&str]) -> BTreeMap<String, String> {
    names.iter().map(|n| (n.to_string(), n.to_string())).collect()
}

fn names<'a>(page: &[(&'a str, &String)]) -> Vec<&'a str> {
    page.iter().map(|(name, _)| *name).collect()
}

fn reason(e: ControlPlaneError) -> (String, &'static str) {
    match e {
        ControlPlaneError::InvalidArgument { field, reason, .. } => (field, reason),
        other => panic!("expected an invalid argument, got {other:?}"),
    }
}

#[test]
fn a_walk_returns_each_item_once_in_order_while_others_come_and_go() {
    let mut all = items(&["a", "b", "c", "d", "e"]);
    let first = Page::parse("functions", &[""], 2, "").unwrap();
    let (page, token) = first.take(&all, |_, _| true);
    assert_eq!(names(&page), ["a", "b"]);
    // Between pages: one behind the cursor removed, one ahead added, one ahead removed.
    all.remove("a");
    all.insert("bb".into(), "bb".into());
    all.remove("d");
    let second = Page::parse("functions", &[""], 2, &token).unwrap();
    let (page, token) = second.take(&all, |_, _| true);
    assert_eq!(names(&page), ["bb", "c"]);
    let (page, token) = Page::parse("functions", &[""], 2, &token)
        .unwrap()
        .take(&all, |_, _| true);
    assert_eq!(names(&page), ["e"]);
    assert_eq!(token, "", "the last page has no next token");
    // A filter skips items without ending the page early.
    let (page, _) = Page::parse("functions", &[""], 2, "")
        .unwrap()
        .take(&all, |name, _| name != "b");
    assert_eq!(names(&page), ["bb", "c"]);
}

#[test]
fn sizes_and_tokens_out_of_place_are_refused_naming_the_field() {
    assert_eq!(
        reason(Page::parse("functions", &[], 0, "").unwrap_err()),
        ("page_size".to_string(), "BAD_PAGE_SIZE")
    );
    assert_eq!(
        reason(Page::parse("functions", &[], MAX_PAGE_SIZE + 1, "").unwrap_err()),
        ("page_size".to_string(), "BAD_PAGE_SIZE")
    );
    let all = items(&["a", "b", "c"]);
    let (_, token) = Page::parse("functions", &["x"], 1, "").unwrap().take(&all, |_, _| true);
    assert!(!token.is_empty());
    for (list, filters, token) in [
        ("secrets", vec!["x"], token.as_str()),
        ("functions", vec!["y"], token.as_str()),
        ("functions", vec!["x"], "not base64 !"),
        ("functions", vec!["x"], "aGVsbG8"),
    ] {
        assert_eq!(
            reason(Page::parse(list, &filters, 1, token).unwrap_err()),
            ("page_token".to_string(), "BAD_PAGE_TOKEN"),
            "{list} {filters:?} {token}"
        );
    }
    assert!(Page::parse("functions", &["x"], 1, &token).is_ok());
}

#[test]
fn label_selectors_match_every_term() {
    let labels: BTreeMap<String, String> = [("team", "pay"), ("tier", "web")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (selector, expected) in [
        ("", true),
        ("team=pay", true),
        ("team=pay, tier=web", true),
        ("team=ops", false),
        ("team!=ops", true),
        ("tier", true),
        ("!tier", false),
        ("!beta,team", true),
    ] {
        assert_eq!(
            LabelSelector::parse(selector).unwrap().matches(&labels),
            expected,
            "{selector}"
        );
    }
    for bad in ["=pay", "te am=pay", "!", "a=b,=c"] {
        assert_eq!(
            reason(LabelSelector::parse(bad).unwrap_err()),
            ("label_selector".to_string(), "BAD_LABEL_SELECTOR"),
            "{bad}"
        );
    }
}
