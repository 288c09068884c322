#!/bin/sh
# One-shot (temporalio/admin-tools), after the server is up and before any worker starts:
# the namespace and the case search attributes (starter/client.py SEARCH_ATTRIBUTE_TYPES;
# tests/test_deploy.py keeps the list below equal to it). Only what is missing is created,
# so a rerun changes nothing; any other failure stops the stack (none is ignored).
set -eu
: "${TEMPORAL_ADDRESS:?}"
NAMESPACE=${TEMPORAL_NAMESPACE:-default}
RETENTION=${TEMPORAL_RETENTION:-30d}
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" | grep -q SERVING; do
  echo "waiting for the Temporal server at $TEMPORAL_ADDRESS"
  sleep 2
done
if ! temporal operator namespace describe --address "$TEMPORAL_ADDRESS" \
  --namespace "$NAMESPACE" >/dev/null 2>&1; then
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" \
    --namespace "$NAMESPACE" --retention "$RETENTION"
fi
existing=$(temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" \
  --namespace "$NAMESPACE" --output json)
for pair in \
  CaseReference:Keyword \
  CaseTopic:Keyword \
  CaseWorkflowType:Keyword \
  CaseStatus:Keyword \
  SlaStatus:Keyword \
  OpenTaskOwners:KeywordList \
  NextDeadline:Datetime \
  OpenTasks:Int \
  HoldStatus:Keyword; do
  name=${pair%%:*}
  type=${pair#*:}
  if ! printf '%s' "$existing" | grep -q "\"$name\""; then
    temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" \
      --namespace "$NAMESPACE" --name "$name" --type "$type"
  fi
done
echo "namespace $NAMESPACE and the case search attributes ready"
