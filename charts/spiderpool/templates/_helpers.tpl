{{/* Labels every object carries. */}}
{{- define "spiderpool.labels" -}}
app.kubernetes.io/name: spiderpool
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Common annotations, or nothing. */}}
{{- define "spiderpool.annotations" -}}
{{- with .Values.global.commonAnnotations -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "spiderpool-agent"). */}}
{{- define "spiderpool.selectorLabels" -}}
app.kubernetes.io/name: spiderpool
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* An image reference from an image block: (dict "ctx" $ "image" .Values.x.image). */}}
{{- define "spiderpool.image" -}}
{{- $registry := .image.registry -}}
{{- if .ctx.Values.global.imageRegistryOverride -}}
{{- $registry = .ctx.Values.global.imageRegistryOverride -}}
{{- end -}}
{{- $repo := .image.repository -}}
{{- if $registry -}}
{{- $repo = printf "%s/%s" $registry .image.repository -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end }}

{{/* Service account name of a component block. */}}
{{- define "spiderpool.serviceAccountName" -}}
{{- .name -}}
{{- end }}

{{/* Values the chart cannot honour yet: refuse rather than render something half-done. */}}
{{- define "spiderpool.validate" -}}
{{- if not (or .Values.ipam.enableIPv4 .Values.ipam.enableIPv6) -}}
{{- fail "ipam.enableIPv4 and ipam.enableIPv6 are both false: enable at least one family" -}}
{{- end -}}
{{- if not (has .Values.spiderpoolController.tls.method (list "auto" "provided")) -}}
{{- fail (printf "spiderpoolController.tls.method %q: must be auto or provided (certmanager is not supported)" .Values.spiderpoolController.tls.method) -}}
{{- end -}}
{{- if eq .Values.spiderpoolController.tls.method "provided" -}}
{{- $p := .Values.spiderpoolController.tls.provided -}}
{{- if not (and $p.tlsCert $p.tlsKey $p.tlsCa) -}}
{{- fail "spiderpoolController.tls.method=provided needs tls.provided.tlsCert, tlsKey and tlsCa (base64 PEM)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.clusterDefaultPool.installIPv4IPPool (not .Values.clusterDefaultPool.ipv4Subnet) -}}
{{- fail "clusterDefaultPool.installIPv4IPPool needs clusterDefaultPool.ipv4Subnet" -}}
{{- end -}}
{{- if and .Values.clusterDefaultPool.installIPv6IPPool (not .Values.clusterDefaultPool.ipv6Subnet) -}}
{{- fail "clusterDefaultPool.installIPv6IPPool needs clusterDefaultPool.ipv6Subnet" -}}
{{- end -}}
{{- end }}
