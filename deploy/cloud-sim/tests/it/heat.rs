use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{outputs, start, start_with, Sim};

const SIMPLE: &str = r#"
heat_template_version: 2018-08-31
description: RandomString feeding TestResource
parameters:
  n: {type: number, default: 8}
  label: {type: string}
  flag: {type: boolean, default: false}
  names: {type: comma_delimited_list, default: "a,b"}
  secret: {type: string, default: hush, hidden: true}
  size:
    type: number
    default: 2
    constraints:
      - range: {min: 1, max: 5}
conditions:
  flagged: {equals: [{get_param: flag}, true]}
  not_flagged: {not: flagged}
resources:
  rnd:
    type: OS::Heat::RandomString
    properties: {length: {get_param: n}}
  tr:
    type: OS::Heat::TestResource
    properties:
      value:
        str_replace:
          template: $L-$R
          params: {$L: {get_param: label}, $R: {get_attr: [rnd, value]}}
  only_flagged:
    type: OS::Heat::None
    condition: flagged
outputs:
  out: {value: {get_attr: [tr, output]}, description: the value}
  joined: {value: {list_join: [",", {get_param: names}, [{get_param: "OS::stack_name"}]]}}
  choice: {value: {if: [not_flagged, off, on]}}
  unknown: {value: {yaql: {expression: "1"}}}
  file: {value: {get_file: "hello.txt"}}
"#;

#[tokio::test]
async fn create_complete_outputs_and_reads() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;
    let url = sim
        .create_stack(
            &tok,
            "demo",
            json!({"stack_name": "simple", "template": SIMPLE, "parameters": {"label": "L", "n": "4"},
                   "files": {"hello.txt": "hi"}}),
        )
        .await;
    assert!(
        url.starts_with(&format!("{}/stacks/simple/", sim.heat("demo"))),
        "{url}"
    );
    let first = sim.show(&tok, &url).await;
    assert_eq!(first["stack_status"], "CREATE_IN_PROGRESS");
    assert_eq!(first["stack_status_reason"], "Stack CREATE started");
    let s = sim.wait(&tok, &url).await;
    assert_eq!(s["stack_status"], "CREATE_COMPLETE", "{s}");
    assert_eq!(
        s["stack_status_reason"],
        "Stack CREATE completed successfully"
    );
    assert_eq!(s["disable_rollback"], true);
    assert_eq!(s["timeout_mins"], Value::Null);
    assert_eq!(s["description"], "RandomString feeding TestResource");
    let p = &s["parameters"];
    assert_eq!(p["n"], "4");
    assert_eq!(p["flag"], "False");
    assert_eq!(p["names"], "a,b");
    assert_eq!(p["secret"], "******");
    assert_eq!(p["OS::stack_name"], "simple");
    assert_eq!(p["OS::stack_id"], s["id"]);
    assert_eq!(
        p["OS::project_id"],
        magnum_cloud_sim::project_id("demo").as_str()
    );
    let o = outputs(&s);
    let out = o["out"].as_str().unwrap();
    assert!(out.starts_with("L-") && out.len() == 6, "{out}");
    assert_eq!(o["joined"], "a,b,simple");
    assert_eq!(o["choice"], "off");
    assert_eq!(o["unknown"], Value::Null);
    assert_eq!(o["file"], "hi");
    let desc = s["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["output_key"] == "out")
        .unwrap();
    assert_eq!(desc["description"], "the value");

    // resolve_outputs=false omits outputs.
    let r = sim
        .call(
            Method::GET,
            &format!("{url}?resolve_outputs=false"),
            &tok,
            None,
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert!(v["stack"].get("outputs").is_none());

    // Resources (the conditional one is absent), events, outputs endpoints.
    let r = sim
        .call(Method::GET, &format!("{url}/resources"), &tok, None)
        .await;
    let v: Value = r.json().await.unwrap();
    let res = v["resources"].as_array().unwrap();
    assert_eq!(res.len(), 2);
    let rnd = res.iter().find(|r| r["resource_name"] == "rnd").unwrap();
    assert_eq!(rnd["resource_status"], "CREATE_COMPLETE");
    assert_eq!(rnd["resource_type"], "OS::Heat::RandomString");
    assert_eq!(rnd["required_by"], json!(["tr"]));
    let r = sim
        .call(Method::GET, &format!("{url}/resources/tr"), &tok, None)
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["resource"]["attributes"]["output"], out);
    let r = sim
        .call(Method::GET, &format!("{url}/resources/nope"), &tok, None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = sim
        .call(Method::GET, &format!("{url}/events"), &tok, None)
        .await;
    let v: Value = r.json().await.unwrap();
    let ev = v["events"].as_array().unwrap();
    // newest first: the stack's completion
    assert_eq!(ev[0]["resource_name"], "simple");
    assert_eq!(ev[0]["resource_status"], "CREATE_COMPLETE");
    assert_eq!(
        ev.last().unwrap()["resource_status_reason"],
        "Stack CREATE started"
    );
    assert!(ev
        .iter()
        .any(|e| e["resource_name"] == "tr" && e["resource_status"] == "CREATE_IN_PROGRESS"));
    let r = sim
        .call(Method::GET, &format!("{url}/outputs"), &tok, None)
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["outputs"].as_array().unwrap().len(), 5);
    assert!(v["outputs"][0].get("output_value").is_none());
    let r = sim
        .call(Method::GET, &format!("{url}/outputs/out"), &tok, None)
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["output"]["output_value"], out);
    let r = sim
        .call(Method::GET, &format!("{url}/outputs/missing"), &tok, None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // List.
    let r = sim.call(Method::GET, &sim.stacks("demo"), &tok, None).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["stacks"].as_array().unwrap().len(), 1);
    assert_eq!(v["stacks"][0]["stack_name"], "simple");
    assert_eq!(v["stacks"][0]["description"], "");
    let r = sim
        .call(
            Method::GET,
            &format!("{}/stacks?status=FAILED", sim.heat("demo")),
            &tok,
            None,
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert!(v["stacks"].as_array().unwrap().is_empty());

    // PATCH a parameter: only the affected resource changes.
    let r = sim
        .call(
            Method::PATCH,
            &url,
            &tok,
            Some(json!({"parameters": {"label": "M"}})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let s2 = sim.wait(&tok, &url).await;
    assert_eq!(s2["stack_status"], "UPDATE_COMPLETE");
    let out2 = outputs(&s2)["out"].as_str().unwrap().to_string();
    assert_eq!(&out2[2..], &out[2..], "random string kept");
    assert!(out2.starts_with("M-"));
    assert_eq!(s2["parameters"]["n"], "4", "PATCH keeps other parameters");
}

#[tokio::test]
async fn create_validation_errors() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;
    let stacks = sim.stacks("demo");
    let post = |body: Value| {
        let (sim, tok, stacks) = (&sim, tok.clone(), stacks.clone());
        async move {
            let r = sim.call(Method::POST, &stacks, &tok, Some(body)).await;
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (st, v) = post(json!({"stack_name": "s", "template": SIMPLE})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], 400);
    assert_eq!(v["title"], "Bad Request");
    assert_eq!(v["error"]["type"], "UserParameterMissing");
    assert_eq!(
        v["error"]["message"],
        "The Parameter (label) was not provided."
    );
    assert_eq!(v["error"]["traceback"], Value::Null);
    assert!(v["explanation"].as_str().unwrap().contains("malformed"));

    let (st, v) = post(
        json!({"stack_name": "s", "template": SIMPLE, "parameters": {"label": "x", "bogus": 1}}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["type"], "UnknownUserParameter");

    let (st, v) = post(
        json!({"stack_name": "s", "template": SIMPLE, "parameters": {"label": "x", "size": 9}}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["type"], "StackValidationFailed");
    assert_eq!(
        v["error"]["message"],
        "Parameter 'size' is invalid: 9 is out of range (min: 1, max: 5)"
    );

    let (st, v) = post(
        json!({"stack_name": "s", "template": SIMPLE, "parameters": {"label": "x", "n": "many"}}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");

    let (st, v) = post(json!({"stack_name": "1bad", "template": SIMPLE})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid stack name 1bad"));

    let (st, v) = post(json!({"stack_name": "s"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["message"], "No template specified");

    let (st, _) =
        post(json!({"stack_name": "s", "template": {"heat_template_version": "2012-12-12"}})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, v) = post(json!({"stack_name": "s", "template": {"heat_template_version": "queens",
        "resources": {"a": {"type": "OS::Heat::None", "properties": {"x": {"get_resource": "missing"}}}}}})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["type"], "InvalidTemplateReference");
    let (st, v) = post(json!({"stack_name": "s", "template": {"heat_template_version": "queens",
        "resources": {"a": {"type": "OS::Heat::None", "depends_on": "b"}, "b": {"type": "OS::Heat::None", "depends_on": ["a"]}}}})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Circular Dependency Found"));
    let (st, v) = post(json!({"stack_name": "s", "template": "heat_template_version: queens\nresources:\n  a: {type: nested.yaml}\n"})).await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "nested template not in files: {v}"
    );
    let (st, _) = post(json!({"stack_name": "s", "template": "resources: [unbalanced"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Nothing was created.
    let r = sim.admin(Method::GET, "/sim/heat/stacks", None).await;
    let v: Value = r.json().await.unwrap();
    assert!(v["stacks"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn auth_and_tenancy() {
    let sim = start().await;
    let (demo, _) = sim.login("demo", "demo").await;
    let (admin, _) = sim.login("admin", "admin").await;
    let (alt, _) = sim.login("alt_demo", "alt_demo").await;
    let stacks = sim.stacks("demo");
    let r = sim.http.get(&stacks).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = sim.call(Method::GET, &stacks, "garbage", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = sim.call(Method::GET, &stacks, &alt, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 403);
    let r = sim.call(Method::GET, &stacks, &admin, None).await;
    assert_eq!(r.status(), StatusCode::OK, "admin may use another tenant");
    let r = sim.call(Method::GET, &stacks, &demo, None).await;
    assert_eq!(r.status(), StatusCode::OK);
}

const WORKER: &str = r#"
heat_template_version: queens
parameters:
  name: {type: string}
  fixed_network: {type: string}
  fixed_subnet: {type: string}
  flavor: {type: string, default: m1.small}
resources:
  port:
    type: OS::Neutron::Port
    properties:
      network: {get_param: fixed_network}
      fixed_ips: [{subnet: {get_param: fixed_subnet}}]
  server:
    type: OS::Nova::Server
    properties:
      name: {get_param: name}
      flavor: {get_param: flavor}
      networks: [{port: {get_resource: port}}]
outputs:
  ip: {value: {get_attr: [port, fixed_ips, 0, ip_address]}}
  server_ip: {value: {get_attr: [server, first_address]}}
  server_name: {value: {get_attr: [server, name]}}
  OS::stack_id: {value: {get_resource: server}}
"#;

const CLUSTER: &str = r#"
heat_template_version: 2018-08-31
parameters:
  count: {type: number, default: 2, constraints: [{range: {min: 0, max: 10}}]}
  minions_to_remove: {type: comma_delimited_list, default: []}
  fixed_cidr: {type: string, default: 10.1.0.0/24}
resources:
  net: {type: OS::Neutron::Net}
  subnet:
    type: OS::Neutron::Subnet
    properties: {network: {get_resource: net}, cidr: {get_param: fixed_cidr}}
  workers:
    type: OS::Heat::ResourceGroup
    properties:
      count: {get_param: count}
      removal_policies: [{resource_list: {get_param: minions_to_remove}}]
      resource_def:
        type: file:///templates/kubeminion.yaml
        properties:
          name: {list_join: ['-', [{get_param: 'OS::stack_name'}, 'node', '%index%']]}
          fixed_network: {get_resource: net}
          fixed_subnet: {get_resource: subnet}
outputs:
  ips: {value: {get_attr: [workers, ip]}}
  server_ips: {value: {get_attr: [workers, server_ip]}}
  names: {value: {get_attr: [workers, server_name]}}
  refs: {value: {get_attr: [workers, refs]}}
  refs_map: {value: {get_attr: [workers, refs_map]}}
  first: {value: {get_attr: [workers, resource.0, ip]}}
"#;

fn cluster_body(name: &str, count: u32) -> Value {
    json!({
        "stack_name": name,
        "template": CLUSTER,
        "files": {"file:///templates/kubeminion.yaml": WORKER},
        "parameters": {"count": count},
        "timeout_mins": 60,
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap_or("null").to_string())
        .collect()
}

/// Keys of an object value.
fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// PATCH new `parameters` onto a stack and wait; the final show body.
async fn patch_params(sim: &Sim, tok: &str, url: &str, params: Value) -> Value {
    let r = sim
        .call(
            Method::PATCH,
            url,
            tok,
            Some(json!({ "parameters": params })),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    sim.wait(tok, url).await
}

#[tokio::test]
async fn resource_group_of_nested_templates_scales() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;
    let url = sim.create_stack(&tok, "demo", cluster_body("k8s", 3)).await;
    let s = sim.wait(&tok, &url).await;
    assert_eq!(s["stack_status"], "CREATE_COMPLETE", "{s}");
    assert_eq!(s["timeout_mins"], 60);
    let o = outputs(&s);
    let ips = strings(&o["ips"]);
    assert_eq!(ips.len(), 3);
    assert!(ips.iter().all(|ip| ip.starts_with("10.1.0.")), "{ips:?}");
    assert_eq!(ips.iter().collect::<BTreeSet<_>>().len(), 3, "distinct IPs");
    assert_eq!(
        strings(&o["server_ips"]),
        ips,
        "servers use their ports' IPs"
    );
    assert_eq!(
        strings(&o["names"]),
        vec!["k8s-node-0", "k8s-node-1", "k8s-node-2"]
    );
    assert_eq!(o["first"], ips[0].as_str());
    let refs = strings(&o["refs"]);
    assert_eq!(refs.len(), 3);
    assert_eq!(keys(&o["refs_map"]), vec!["0", "1", "2"]);

    // nested_depth=2 lists the members' inner resources with parent_resource.
    let r = sim
        .call(
            Method::GET,
            &format!("{url}/resources?nested_depth=2"),
            &tok,
            None,
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let all = v["resources"].as_array().unwrap();
    let servers: Vec<&Value> = all
        .iter()
        .filter(|r| r["resource_type"] == "OS::Nova::Server")
        .collect();
    assert_eq!(servers.len(), 3);
    assert!(servers
        .iter()
        .all(|s| ["0", "1", "2"].contains(&s["parent_resource"].as_str().unwrap())));
    let group = all
        .iter()
        .find(|r| r["resource_name"] == "workers")
        .unwrap();
    assert!(group["links"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["rel"] == "nested"));
    let r = sim
        .call(Method::GET, &format!("{url}/resources?bogus=1"), &tok, None)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Scale up.
    let s = patch_params(&sim, &tok, &url, json!({"count": 4})).await;
    assert_eq!(s["stack_status"], "UPDATE_COMPLETE", "{s}");
    assert_eq!(s["parameters"]["count"], "4");
    let o = outputs(&s);
    let ips4 = strings(&o["ips"]);
    assert_eq!(ips4.len(), 4);
    assert_eq!(&ips4[..3], &ips[..], "existing members untouched");
    let refs4 = strings(&o["refs"]);
    assert_eq!(&refs4[..3], &refs[..]);

    // Scale down removing member 1 by its server id (what the autoscaler sends).
    let s = patch_params(
        &sim,
        &tok,
        &url,
        json!({"count": 3, "minions_to_remove": [refs4[1].clone()]}),
    )
    .await;
    assert_eq!(s["stack_status"], "UPDATE_COMPLETE", "{s}");
    let o = outputs(&s);
    assert_eq!(keys(&o["refs_map"]), vec!["0", "2", "3"]);
    assert_eq!(
        strings(&o["ips"]),
        vec![ips4[0].clone(), ips4[2].clone(), ips4[3].clone()]
    );

    // Scale down without a removal list: the highest index goes.
    let s = patch_params(&sim, &tok, &url, json!({"count": 2})).await;
    let o = outputs(&s);
    assert_eq!(keys(&o["refs_map"]), vec!["0", "2"]);

    // Scale up again: the removed name "1" is never reused.
    let s = patch_params(&sim, &tok, &url, json!({"count": 3})).await;
    let o = outputs(&s);
    assert_eq!(keys(&o["refs_map"]), vec!["0", "2", "3"]);
    let names = strings(&o["names"]);
    assert_eq!(names, vec!["k8s-node-0", "k8s-node-2", "k8s-node-3"]);

    // Count 0 and back.
    let s = patch_params(&sim, &tok, &url, json!({"count": 0})).await;
    assert_eq!(s["stack_status"], "UPDATE_COMPLETE");
    assert_eq!(outputs(&s)["ips"], json!([]));

    // Exactly one stack with this name was ever created.
    let v: Value = sim.admin_json("/sim/heat/stacks").await;
    assert_eq!(v["creates_by_name"]["k8s"], 1);
    assert_eq!(v["stacks"].as_array().unwrap().len(), 1);
    let v: Value = sim.admin_json("/sim/heat/stacks?show_nested=true").await;
    assert!(v["stacks"].as_array().unwrap().len() > 1);
}

#[tokio::test]
async fn duplicate_delete_and_lookup() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;
    let heat = sim.heat("demo");
    // Slow servers (100 s × 0.01) so that the delete below lands during the create.
    let r = sim
        .set_latency(
            json!({"resource_type": "OS::Nova::Server", "action": "CREATE", "seconds": 100.0}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let url = sim.create_stack(&tok, "demo", cluster_body("dup", 1)).await;
    let id = url.rsplit('/').next().unwrap().to_string();

    let r = sim
        .call(
            Method::POST,
            &format!("{heat}/stacks"),
            &tok,
            Some(cluster_body("dup", 1)),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 409);
    assert_eq!(v["title"], "Conflict");
    assert_eq!(v["error"]["type"], "StackExists");
    assert_eq!(v["error"]["message"], "The Stack (dup) already exists.");

    // 302 lookups by name and by id, keeping the sub-path and the query.
    for key in ["dup", id.as_str()] {
        let r = sim
            .call(
                Method::GET,
                &format!("{heat}/stacks/{key}?resolve_outputs=False"),
                &tok,
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::FOUND);
        let loc = r.headers().get("location").unwrap().to_str().unwrap();
        assert_eq!(loc, format!("{url}?resolve_outputs=False"));
    }
    let r = sim
        .call(
            Method::GET,
            &format!("{heat}/stacks/dup/resources"),
            &tok,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        r.headers().get("location").unwrap().to_str().unwrap(),
        format!("{url}/resources")
    );
    let r = sim
        .call(
            Method::PATCH,
            &format!("{heat}/stacks/dup"),
            &tok,
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let r = sim
        .call(Method::GET, &format!("{heat}/stacks/nosuch"), &tok, None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"]["message"],
        "The Stack (nosuch) could not be found."
    );
    // Canonical URL with a wrong name → 404.
    let r = sim
        .call(
            Method::GET,
            &format!("{heat}/stacks/other/{id}"),
            &tok,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Delete while creating: cancelled, then DELETE_COMPLETE.
    let r = sim.call(Method::DELETE, &url, &tok, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let s = sim.wait(&tok, &url).await;
    assert_eq!(s["stack_status"], "DELETE_COMPLETE", "{s}");
    assert_eq!(
        s["stack_status_reason"],
        "Stack DELETE completed successfully"
    );
    assert!(s["deletion_time"].is_string());
    assert!(s.get("outputs").is_none());
    // By id: still visible (302 → DELETE_COMPLETE); by name: gone.
    let r = sim
        .call(Method::GET, &format!("{heat}/stacks/{id}"), &tok, None)
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let r = sim
        .call(Method::GET, &format!("{heat}/stacks/dup"), &tok, None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = sim.call(Method::DELETE, &url, &tok, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = sim
        .call(
            Method::PATCH,
            &url,
            &tok,
            Some(json!({"parameters": {"count": 2}})),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "update of a deleted stack"
    );
    let r = sim
        .call(Method::GET, &format!("{heat}/stacks"), &tok, None)
        .await;
    let v: Value = r.json().await.unwrap();
    assert!(v["stacks"].as_array().unwrap().is_empty());
    let r = sim
        .call(
            Method::GET,
            &format!("{heat}/stacks?show_deleted=true"),
            &tok,
            None,
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["stacks"].as_array().unwrap().len(), 1);

    // Events show the cancellation.
    let reasons = sim.event_reasons(&tok, &url, "dup").await;
    assert_eq!(
        reasons,
        vec![
            "Stack CREATE started",
            "Stack CREATE cancelled",
            "Stack DELETE started",
            "Stack DELETE completed successfully"
        ]
    );

    // The name is free again.
    sim.set_latency(
        json!({"resource_type": "OS::Nova::Server", "action": "CREATE", "seconds": 2.0}),
    )
    .await;
    let url2 = sim.create_stack(&tok, "demo", cluster_body("dup", 1)).await;
    assert_ne!(url2, url);
    let s = sim.wait(&tok, &url2).await;
    assert_eq!(s["stack_status"], "CREATE_COMPLETE");
    // Every nested stack of the first one is deleted too.
    let v: Value = sim.admin_json("/sim/heat/stacks?show_nested=true").await;
    // The deleted stack's nested stacks were purged; the new stack's are live.
    let nested: Vec<&Value> = v["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"].as_str().unwrap().starts_with("dup-"))
        .collect();
    assert!(!nested.is_empty());
    assert!(nested.iter().all(|s| s["deleted"] == false), "{nested:?}");
    assert_eq!(v["creates_by_name"]["dup"], 2);
}

#[tokio::test]
async fn failures_timeouts_and_rollback() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;

    // An injected server failure inside a group member.
    let r = sim
        .add_fault(
            json!({"kind": "resource_fail", "resource_type": "OS::Nova::Server", "action": "CREATE",
                         "message": "Went to status ERROR due to \"No valid host\"", "count": 1}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let url = sim
        .create_stack(&tok, "demo", cluster_body("failing", 1))
        .await;
    let s = sim.wait(&tok, &url).await;
    assert_eq!(s["stack_status"], "CREATE_FAILED");
    assert_eq!(
        s["stack_status_reason"],
        "Resource CREATE failed: ResourceInError: resources.workers.resources[0].resources.server: Went to status ERROR due to \"No valid host\""
    );
    // Outputs are still evaluated (nulls for what is missing).
    assert_eq!(outputs(&s)["server_ips"], json!([null]));
    // A PATCH retries and succeeds (the fault was used up).
    let r = sim.call(Method::PATCH, &url, &tok, Some(json!({}))).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let s = sim.wait(&tok, &url).await;
    assert_eq!(s["stack_status"], "UPDATE_COMPLETE", "{s}");
    assert_eq!(strings(&outputs(&s)["server_ips"]).len(), 1);

    // TestResource fail=true with rollback enabled → ROLLBACK_COMPLETE.
    let t = json!({"heat_template_version": "2018-08-31",
        "resources": {"a": {"type": "OS::Heat::TestResource", "properties": {"fail": true}},
                      "b": {"type": "OS::Heat::TestResource"}}});
    let url = sim
        .create_stack(
            &tok,
            "demo",
            json!({"stack_name": "rb", "template": t, "disable_rollback": false}),
        )
        .await;
    let s = sim.wait(&tok, &url).await;
    assert_eq!(s["stack_status"], "ROLLBACK_COMPLETE", "{s}");
    let stack_reasons = sim.event_reasons(&tok, &url, "rb").await;
    assert_eq!(
        stack_reasons,
        vec![
            "Stack CREATE started",
            "Resource CREATE failed: ValueError: resources.a: Test Resource failed a",
            "Stack ROLLBACK started",
            "Stack ROLLBACK completed successfully"
        ]
    );
    let r = sim
        .call(Method::GET, &format!("{url}/resources"), &tok, None)
        .await;
    let v: Value = r.json().await.unwrap();
    assert!(v["resources"].as_array().unwrap().is_empty());

    // Timeout: 1 minute × 0.01 = 0.6 s, the resource needs 10 s × 0.01... ×100 = 10 s.
    let t = json!({"heat_template_version": "2018-08-31",
        "resources": {"slow": {"type": "OS::Heat::TestResource", "properties": {"wait_secs": 1000}}}});
    let url = sim
        .create_stack(
            &tok,
            "demo",
            json!({"stack_name": "slow", "template": t, "timeout_mins": 1}),
        )
        .await;
    let s = sim.wait(&tok, &url).await;
    assert_eq!(s["stack_status"], "CREATE_FAILED");
    assert_eq!(s["stack_status_reason"], "Create timed out");
    let r = sim
        .call(Method::GET, &format!("{url}/resources/slow"), &tok, None)
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["resource"]["resource_status"], "CREATE_FAILED");
    assert_eq!(v["resource"]["resource_status_reason"], "CREATE aborted");
    // A failed stack can be deleted.
    let r = sim.call(Method::DELETE, &url, &tok, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        sim.wait(&tok, &url).await["stack_status"],
        "DELETE_COMPLETE"
    );

    // While a stack is deleting, updates are refused.
    let t = json!({"heat_template_version": "2018-08-31",
        "resources": {"r": {"type": "OS::Heat::TestResource", "properties": {"action_wait_secs": {"delete": 100}}}}});
    let url = sim
        .create_stack(
            &tok,
            "demo",
            json!({"stack_name": "deleting", "template": t}),
        )
        .await;
    assert_eq!(
        sim.wait(&tok, &url).await["stack_status"],
        "CREATE_COMPLETE"
    );
    let r = sim.call(Method::DELETE, &url, &tok, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = sim.call(Method::PATCH, &url, &tok, Some(json!({}))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "NotSupported");
    assert_eq!(
        v["error"]["message"],
        "Updating a stack when it is deleting is not supported."
    );
    assert_eq!(
        sim.wait(&tok, &url).await["stack_status"],
        "DELETE_COMPLETE"
    );
}

#[tokio::test]
async fn put_replaces_and_update_during_create() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;
    let t1 = json!({"heat_template_version": "2018-08-31",
        "parameters": {"v": {"type": "string", "default": "one"}},
        "resources": {"a": {"type": "OS::Heat::TestResource", "properties": {"value": {"get_param": "v"}, "wait_secs": 20}}},
        "outputs": {"a": {"value": {"get_attr": ["a", "output"]}}}});
    let url = sim
        .create_stack(
            &tok,
            "demo",
            json!({"stack_name": "p", "template": t1, "parameters": {"v": "x"}}),
        )
        .await;
    // PATCH while CREATE_IN_PROGRESS (convergence: accepted, new traversal).
    let s = patch_params(&sim, &tok, &url, json!({"v": "y"})).await;
    assert_eq!(s["stack_status"], "UPDATE_COMPLETE", "{s}");
    assert_eq!(outputs(&s)["a"], "y");

    // PUT replaces template and parameters.
    let t2 = json!({"heat_template_version": "2018-08-31",
        "resources": {"b": {"type": "OS::Heat::Value", "properties": {"value": 42}}},
        "outputs": {"b": {"value": {"get_attr": ["b", "value"]}}}});
    let r = sim
        .call(Method::PUT, &url, &tok, Some(json!({"template": t2})))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let s = sim.wait(&tok, &url).await;
    assert_eq!(s["stack_status"], "UPDATE_COMPLETE");
    assert_eq!(outputs(&s)["b"], 42);
    let r = sim
        .call(Method::GET, &format!("{url}/resources"), &tok, None)
        .await;
    let v: Value = r.json().await.unwrap();
    let names: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resource_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["b"]);
    // PUT without a template is rejected.
    let r = sim
        .call(Method::PUT, &url, &tok, Some(json!({"parameters": {}})))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Legacy locking: update while in progress → 409.
    sim.admin(
        Method::POST,
        "/sim/heat/engine",
        Some(json!({"legacy_locking": true})),
    )
    .await;
    let mut slow = t1.clone();
    slow["resources"]["a"]["properties"]["wait_secs"] = json!(500);
    let url = sim
        .create_stack(&tok, "demo", json!({"stack_name": "q", "template": slow}))
        .await;
    // PATCH is refused before the lock is looked at, as real Heat 27 does (differential tier).
    let r = sim.call(Method::PATCH, &url, &tok, Some(json!({}))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "NotSupported");
    let r = sim
        .call(Method::PUT, &url, &tok, Some(json!({"template": slow})))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "ActionInProgress");
}

#[tokio::test]
async fn state_file_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let sim = start_with(Some(path.clone()), None).await;
    let (tok, _) = sim.login("demo", "demo").await;
    let url = sim
        .create_stack(&tok, "demo", cluster_body("persisted", 2))
        .await;
    let s = sim.wait(&tok, &url).await;
    assert_eq!(s["stack_status"], "CREATE_COMPLETE");
    let ips = outputs(&s)["ips"].clone();
    let id = url.rsplit('/').next().unwrap().to_string();
    sim.handle.shutdown().await;
    assert!(path.exists());

    let sim = start_with(Some(path.clone()), None).await;
    // The old token still works (against a new port, the URL of the same tenant).
    let url = format!("{}/stacks/persisted/{id}", sim.heat("demo"));
    let s = sim.show(&tok, &url).await;
    assert_eq!(s["stack_status"], "CREATE_COMPLETE");
    assert_eq!(outputs(&s)["ips"], ips);
    // A stack left in progress resumes after a restart.
    let r = sim
        .call(
            Method::PATCH,
            &url,
            &tok,
            Some(json!({"parameters": {"count": 3}})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    sim.handle.shutdown().await;
    let sim = start_with(Some(path.clone()), None).await;
    let url = format!("{}/stacks/persisted/{id}", sim.heat("demo"));
    let s = sim.wait(&tok, &url).await;
    assert_eq!(s["stack_status"], "UPDATE_COMPLETE", "{s}");
    assert_eq!(outputs(&s)["ips"].as_array().unwrap().len(), 3);
    let r = sim
        .call(
            Method::POST,
            &sim.stacks("demo"),
            &tok,
            Some(cluster_body("persisted", 1)),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

/// `GET /stacks?id=…` lists exactly the asked stacks (the conductors' status feed asks up to
/// 100 at a time): several ids, an unknown one, one in upper case (Heat compares the text) and
/// one of another project (not listed without `global_tenant`).
#[tokio::test]
async fn list_by_id_lists_the_asked_stacks_only() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;
    let heat = sim.heat("demo");
    let mut ids = Vec::new();
    for name in ["by-id-a", "by-id-b", "by-id-c"] {
        let url = sim.create_stack(&tok, "demo", cluster_body(name, 1)).await;
        ids.push(url.rsplit('/').next().unwrap().to_string());
    }
    let (alt_tok, _) = sim.login("alt_demo", "alt_demo").await;
    let alt_url = sim
        .create_stack(&alt_tok, "alt_demo", cluster_body("by-id-alt", 1))
        .await;
    let alt = alt_url.rsplit('/').next().unwrap().to_string();
    let listed = |q: String| {
        let (sim, tok, heat) = (&sim, tok.clone(), heat.clone());
        async move {
            let r = sim
                .call(Method::GET, &format!("{heat}/stacks?{q}"), &tok, None)
                .await;
            assert_eq!(r.status(), StatusCode::OK);
            let v: Value = r.json().await.unwrap();
            let mut got: Vec<String> = v["stacks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_string())
                .collect();
            got.sort();
            got
        }
    };
    let mut want = vec![ids[0].clone(), ids[2].clone()];
    want.sort();
    let q = format!(
        "id={}&id={}&id={}&id=nonsense&id={}&id={alt}",
        ids[0],
        ids[2],
        uuid::Uuid::new_v4(),
        ids[1].to_uppercase()
    );
    assert_eq!(listed(q).await, want);
    assert_eq!(listed(format!("id={}", ids[1])).await, vec![ids[1].clone()]);
    assert_eq!(listed("id=nonsense".into()).await, Vec::<String>::new());
    assert_eq!(listed(String::new()).await.len(), 3);
}
