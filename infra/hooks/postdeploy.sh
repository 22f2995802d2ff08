#!/bin/sh
# After `azd deploy`: subscribe the blob trigger to BlobCreated events of the import container.
# The webhook needs the blobs_extension system key, which exists only once the app runs, hence a hook.
set -eu
app="${AZURE_FUNCTION_APP_NAME:?run azd provision first}"
group="${RESOURCE_GROUP:?}"
topic="${EVENT_GRID_SYSTEM_TOPIC_NAME:?}"
container="${FEC_IMPORT_CONTAINER:-api-import-ecrit}"
key=$(az functionapp keys list -n "$app" -g "$group" --query "systemKeys.blobs_extension" -o tsv)
endpoint="https://${app}.azurewebsites.net/runtime/webhooks/blobs?functionName=Host.Functions.fec_blob_trigger&code=${key}"
az eventgrid system-topic event-subscription create \
  --name fec-blob-trigger \
  --resource-group "$group" \
  --system-topic-name "$topic" \
  --endpoint "$endpoint" \
  --endpoint-type webhook \
  --included-event-types Microsoft.Storage.BlobCreated \
  --subject-begins-with "/blobServices/default/containers/${container}/" \
  --max-delivery-attempts 30 \
  --event-ttl 1440 >/dev/null
echo "Event Grid subscription fec-blob-trigger -> ${app} (container ${container})"
