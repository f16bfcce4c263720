//! Whole lists through the Admin API's pages: the CLI shows everything, so it walks every page.

use crate::connect::{explain, Admin};
use fjord_proto::v1 as pb;
use std::future::Future;

/// Items asked for per page.
const PAGE_SIZE: u32 = 500;

/// Asks `page(token)` for pages until one has no next token; `page` answers a page's items and
/// the next token.
async fn walk<T, Fut>(mut page: impl FnMut(String) -> Fut) -> anyhow::Result<Vec<T>>
where
    Fut: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let (items, next) = page(token).await.map_err(explain)?;
        all.extend(items);
        if next.is_empty() {
            return Ok(all);
        }
        token = next;
    }
}

pub async fn functions(admin: &mut Admin) -> anyhow::Result<Vec<pb::FunctionStatus>> {
    walk(|page_token| {
        let mut admin = admin.clone();
        async move {
            let page = admin
                .list_functions(pb::ListFunctionsRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((page.functions, page.next_page_token))
        }
    })
    .await
}

/// Every node, and the node groups (which come with the first page).
pub async fn nodes(admin: &mut Admin) -> anyhow::Result<pb::ListNodesResponse> {
    let groups = std::sync::Mutex::new(Vec::new());
    let nodes = walk(|page_token| {
        let mut admin = admin.clone();
        let groups = &groups;
        async move {
            let page = admin
                .list_nodes(pb::ListNodesRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                    ..Default::default()
                })
                .await?
                .into_inner();
            groups.lock().expect("groups").extend(page.groups);
            Ok((page.nodes, page.next_page_token))
        }
    })
    .await?;
    Ok(pb::ListNodesResponse {
        nodes,
        groups: groups.into_inner().expect("groups"),
        next_page_token: String::new(),
    })
}

pub async fn secrets(admin: &mut Admin) -> anyhow::Result<Vec<pb::SecretInfo>> {
    walk(|page_token| {
        let mut admin = admin.clone();
        async move {
            let page = admin
                .list_secrets(pb::ListSecretsRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((page.secrets, page.next_page_token))
        }
    })
    .await
}
