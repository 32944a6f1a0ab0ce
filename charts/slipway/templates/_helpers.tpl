{{/*
Names. The namespaced objects keep the manifests' names (gitd), so that an
install moves from manifests/ to the chart with the same StatefulSet, volume
and Service; the cluster-scoped ones are prefixed with the release name
(release "slipway": slipway-gitd, as in manifests/).
*/}}
{{- define "slipway.prefix" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "slipway.labels" -}}
app.kubernetes.io/part-of: slipway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "slipway.gitdLabels" -}}
app.kubernetes.io/name: gitd
{{ include "slipway.labels" . }}
{{- end -}}

{{- define "slipway.image" -}}
{{- $img := index .root.Values.images .name -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/* The subject of every binding: gitd's ServiceAccount. */}}
{{- define "slipway.subjects" -}}
subjects:
  - kind: ServiceAccount
    name: gitd
    namespace: {{ .Release.Namespace }}
{{- end -}}

{{/*
slipway.namespaces: the served namespaces as a JSON list of
{name, registrySecrets}; an entry of watchNamespaces is a name or such an
object. Fails on the combinations that would leave gitd without rights.
*/}}
{{- define "slipway.namespaces" -}}
{{- $out := list -}}
{{- range .Values.watchNamespaces -}}
{{- $ns := dict "name" . "registrySecrets" $.Values.rbac.registrySecrets -}}
{{- if kindIs "map" . -}}
{{- $ns = dict "name" .name "registrySecrets" (hasKey . "registrySecrets" | ternary .registrySecrets $.Values.rbac.registrySecrets) -}}
{{- end -}}
{{- $out = append $out $ns -}}
{{- end -}}
{{- if and .Values.rbac.clusterWide $out -}}
{{- fail "rbac.clusterWide=true serves every namespace: leave watchNamespaces empty" -}}
{{- end -}}
{{- if and (not .Values.rbac.clusterWide) (not $out) -}}
{{- fail "watchNamespaces is empty: list the namespaces gitd serves, or set rbac.clusterWide=true to serve all" -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
