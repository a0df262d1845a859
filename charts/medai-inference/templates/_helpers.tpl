{{- define "medai-inference.labels" -}}
app.kubernetes.io/name: medai-inference
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "medai-inference.selector" -}}
app.kubernetes.io/name: medai-inference
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "medai-inference.image" -}}
{{- if and .Values.bundleBuild (not .Values.image.digest) -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- else -}}
{{- $d := required "image.digest is required: the vLLM image is pinned by the digest in the bundle lock" .Values.image.digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" $d) -}}
{{- fail (printf "image.digest: %q is not sha256:<64 hex>" $d) -}}
{{- end -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}@{{ $d }}
{{- end -}}
{{- end -}}

{{- define "medai-inference.tls" -}}
{{- if .Values.loadBalancer.enabled -}}true{{- end -}}
{{- end -}}


{{- define "medai-inference.modelsVolume" -}}
{{ .Release.Name }}-models
{{- end -}}
