use serde_json::json;

use super::*;

fn provider() -> &'static ProviderSpec {
    Box::leak(Box::new(
        ProviderSpec::parse("name: acme\ndisplay_name: Acme\nauth: [bearer]\n").expect("provider"),
    ))
}

fn declare(yaml: &str) -> Result<DeclaredAction, String> {
    let spec: ActionSpec = serde_saphyr::from_str(yaml).map_err(|error| error.to_string())?;
    DeclaredAction::new(provider(), "do_it", spec)
}

const OUTPUT: &str = "output:\n  schema: {properties: {id: {type: string}}}\n  fields: {id: id}\n";

#[test]
fn every_action_declaration_parses_and_is_consistent() {
    let actions = declared_actions().unwrap_or_else(|error| panic!("{error}"));
    let registry = Registry::builtin();
    for action in &actions {
        let (provider, _) = action.name.split_once('.').expect("provider.action");
        assert_eq!(provider, action.provider.name);
        assert!(
            registry.get(&action.name).is_some(),
            "{}: its provider's `register` adds its declared actions",
            action.name
        );
    }
    let folders: Vec<&str> = ACTION_DECLARATIONS
        .iter()
        .map(|(folder, _)| *folder)
        .collect();
    let providers: Vec<&str> = crate::providers::provider_names().collect();
    assert_eq!(
        folders, providers,
        "every provider folder has an actions.yaml"
    );
}

#[test]
fn the_input_schema_gains_the_connection_and_refuses_unknown_inputs() {
    let action = declare(&format!(
        "description: d\nmethod: GET\npath: /things/{{id}}\n\
         input:\n  required: [id]\n  properties:\n    id: {{type: string, description: The thing.}}\n{OUTPUT}"
    ))
    .expect("declared");
    let action: &'static DeclaredAction = Box::leak(Box::new(action));
    let schema = action.input_schema();
    assert_eq!(schema["$schema"], DRAFT_2020_12);
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(
        schema["properties"]["connection"]["description"],
        "The Acme connection; defaults to the step's `connection:`."
    );
    assert_eq!(
        action.check_input(&json!({"id": "t1", "connection": "c"})),
        Ok(())
    );
    assert_eq!(
        action.check_input(&json!({"id": "t1", "idd": 2})),
        Err(ActionError::InvalidInput(
            "Additional properties are not allowed ('idd' was unexpected)".into()
        ))
    );
    assert_eq!(
        action.check_input(&json!({"id": 3})),
        Err(ActionError::InvalidInput(
            "`with.id`: 3 is not of type \"string\"".into()
        ))
    );
    assert_eq!(action.output_schema()["type"], "object");
    assert_eq!(action.name(), "acme.do_it");
    assert_eq!(action.operation, "do it");
}

#[test]
fn an_error_message_names_the_rule_and_defaults_fill_absent_inputs() {
    let action = declare(&format!(
        "description: d\nmethod: POST\npath: /refunds\nbody: {{form: [charge, intent, limit]}}\n\
         input:\n  properties:\n    charge: {{type: [string, \"null\"], description: c}}\n    \
         intent: {{type: [string, \"null\"], description: i}}\n    \
         limit: {{type: integer, minimum: 1, maximum: 10, default: 5, description: l}}\n  \
         allOf:\n    - errorMessage: set exactly one of `charge` and `intent`\n      oneOf:\n        \
         - {{required: [charge], properties: {{charge: {{type: string}}}}}}\n        \
         - {{required: [intent], properties: {{intent: {{type: string}}}}}}\n{OUTPUT}"
    ))
    .expect("declared");
    let rule = ActionError::InvalidInput("set exactly one of `charge` and `intent`".into());
    for input in [
        json!({}),
        json!({"charge": "c", "intent": "i"}),
        json!({"charge": null}),
    ] {
        assert_eq!(action.prepared_input(&input), Err(rule.clone()), "{input}");
    }
    assert_eq!(
        action.prepared_input(&json!({"intent": "i", "charge": null})),
        Ok(json!({"intent": "i", "charge": null, "limit": 5})
            .as_object()
            .cloned()
            .expect("map"))
    );
    assert!(matches!(
        action.prepared_input(&json!({"intent": "i", "limit": 11})),
        Err(ActionError::InvalidInput(message)) if message.starts_with("`with.limit`")
    ));
}

#[test]
fn inconsistent_declarations_are_refused() {
    let input = "input:\n  required: [id]\n  properties:\n    id: {type: string, description: d}\n";
    for (yaml, expected) in [
        (
            format!("description: d\nmethod: GET\npath: /x\n{input}{OUTPUT}"),
            "input `id` is never sent",
        ),
        (
            format!("description: d\nmethod: GET\npath: /x/{{id}}\nquery: [id]\n{input}{OUTPUT}"),
            "input `id` is sent twice",
        ),
        (
            format!(
                "description: d\nmethod: GET\npath: /x/{{id}}\nquery: [other]\n{input}{OUTPUT}"
            ),
            "`other` is sent but is not an input",
        ),
        (
            format!("description: d\nmethod: FETCH\npath: /x/{{id}}\n{input}{OUTPUT}"),
            "method `FETCH`",
        ),
        (
            format!(
                "description: d\nmethod: GET\npath: /x/{{id}}\n{input}output:\n  schema: {{properties: {{}}}}\n  fields: {{id: id}}\n"
            ),
            "the output produces [\"id\"] but its schema declares []",
        ),
        (
            format!(
                "description: d\nmethod: GET\npath: /x/{{id}}\ninput:\n  required: [id]\n  properties:\n    id: {{type: string}}\n{OUTPUT}"
            ),
            "input `id` has no description",
        ),
        (
            format!(
                "description: d\nmethod: GET\npath: /x/{{id}}\ninput:\n  properties:\n    id: {{type: string, description: d}}\n{OUTPUT}"
            ),
            "path input `id` is not a required input",
        ),
        (
            format!(
                "description: d\nmethod: GET\npath: /x/{{id}}\n{input}{OUTPUT}pagination:\n  style: cursor\n  items: things\n  max_pages: id\n"
            ),
            "`param` is needed",
        ),
        (
            format!(
                "description: d\nmethod: GET\npath: /x/{{id}}\n{input}{OUTPUT}pagination:\n  style: next_url\n  items: things\n  max_pages: id\n"
            ),
            "`next` is needed exactly when the style is `cursor` or `next_url`",
        ),
        (
            format!(
                "description: d\nmethod: GET\npath: /x/{{id}}\n{input}{OUTPUT}pagination:\n  style: next_url\n  items: things\n  next: next\n  param: page\n  max_pages: id\n"
            ),
            "`param` is needed exactly when the style is not `link` or `next_url`",
        ),
        (
            format!(
                "description: d\nmethod: PATCH\npath: /x\nbody: {{json_value: id}}\n{input}{OUTPUT}"
            ),
            "`json_value` input `id` must be declared `type: object`",
        ),
    ] {
        let error = declare(&yaml).expect_err(expected);
        assert!(
            error.contains(expected),
            "expected `{expected}`, got `{error}`"
        );
    }
}

#[test]
fn a_dotted_path_is_replaced_in_place() {
    let mut answer = json!({"data": {"items": [1], "total": 9}});
    replace(&mut answer, "data.items", json!([1, 2, 3]));
    assert_eq!(answer, json!({"data": {"items": [1, 2, 3], "total": 9}}));
    let mut list = json!([1]);
    replace(&mut list, ".", json!([1, 2]));
    assert_eq!(list, json!([1, 2]));
}

#[test]
fn an_example_the_input_schema_refuses_does_not_load() {
    let declaration = |example: &str| {
        format!(
            "description: d\nmethod: GET\npath: /things/{{id}}\nexample: {example}\n\
             input:\n  required: [id]\n  properties:\n    id: {{type: string, description: The thing.}}\n{OUTPUT}"
        )
    };
    let action = declare(&declaration("{id: t1}")).expect("declared");
    assert_eq!(action.spec.example, Some(json!({"id": "t1"})));
    assert_eq!(
        declare(&declaration("{id: 3}"))
            .expect_err("refused")
            .as_str(),
        "example/id: 3 is not of type \"string\""
    );
    assert_eq!(
        declare(&declaration("{}")).expect_err("refused").as_str(),
        "example: \"id\" is a required property"
    );
}

/// The workflow validator sees declared actions as it sees Rust ones: it suggests the closest
/// name and checks `with:` against the declared schema, located, rules by their message.
#[test]
fn the_workflow_validator_checks_declared_actions() {
    let declarations = [
        (
            "create_thing",
            format!(
                "description: d\nmethod: POST\npath: /things\nbody: {{json: [title]}}\n\
                 input:\n  required: [title]\n  properties:\n    title: {{type: string, description: t}}\n{OUTPUT}"
            ),
        ),
        (
            "refund",
            format!(
                "description: d\nmethod: POST\npath: /refunds\nbody: {{form: [charge, intent, amount]}}\n\
                 input:\n  properties:\n    charge: {{type: [string, \"null\"], description: c}}\n    \
                 intent: {{type: [string, \"null\"], description: i}}\n    amount: {{type: integer, description: a}}\n  \
                 allOf:\n    - errorMessage: set exactly one of `charge` and `intent`\n      oneOf:\n        \
                 - {{required: [charge], properties: {{charge: {{type: string}}}}}}\n        \
                 - {{required: [intent], properties: {{intent: {{type: string}}}}}}\n{OUTPUT}"
            ),
        ),
        (
            "list_things",
            format!(
                "description: d\nmethod: GET\npath: /things\nquery: [per_page, state]\n\
                 input:\n  properties:\n    per_page: {{type: integer, maximum: 100, description: p}}\n    \
                 state: {{enum: [open, closed], description: s}}\n{OUTPUT}"
            ),
        ),
    ];
    let mut registry = Registry::default();
    for (name, yaml) in declarations {
        let spec: ActionSpec = serde_saphyr::from_str(&yaml).expect("a declaration");
        let action = DeclaredAction::new(provider(), name, spec).expect("declared");
        let action: &'static DeclaredAction = Box::leak(Box::new(action));
        registry.insert(Arc::new(action));
    }
    let source = "name: declared\nsteps:\n  - id: create\n    uses: acme.create_thin\n    with: {title: hi}\n  \
        - id: thing\n    uses: acme.create_thing\n    with:\n      titel: Broken\n  \
        - id: refund\n    uses: acme.refund\n    with: {amount: 12}\n  \
        - id: list\n    uses: acme.list_things\n    with: {per_page: 500, state: '${{ inputs.state }}'}\n";
    let parsed = stepwise_workflows::parse_workflow("declared.yaml", source, &registry);
    let rendered: Vec<String> = parsed
        .diagnostics
        .iter()
        .map(|diagnostic| diagnostic.render("declared.yaml"))
        .collect();
    assert_eq!(
        rendered,
        [
            "declared.yaml:4:11: WF0010 unknown action `acme.create_thin`; did you mean `acme.create_thing`?",
            "declared.yaml:8:5: WF0011 invalid input for `acme.create_thing`: `with`: \"title\" is a required property",
            "declared.yaml:9:7: WF0011 invalid input for `acme.create_thing`: `with`: Additional properties are not allowed ('titel' was unexpected)",
            "declared.yaml:12:5: WF0011 invalid input for `acme.refund`: `with`: set exactly one of `charge` and `intent`",
            "declared.yaml:15:12: WF0011 invalid input for `acme.list_things`: `with.per_page`: 500 is greater than the maximum of 100",
        ],
        "{rendered:#?}"
    );
}
