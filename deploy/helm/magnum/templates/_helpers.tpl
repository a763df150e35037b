{{/*
Helpers of the magnum-rs chart. openstack-helm's charts take theirs from helm-toolkit; this
chart has no dependency, so the few it needs are here, named after helm-toolkit's where they do
the same thing (labels, to_oslo_conf, the Keystone endpoint lookup).
*/}}

{{/*
The prefix of every object's name: the release name when it already says "magnum", else
"<release>-magnum". At most 40 characters, so that "<prefix>-conductor-discovery" and the pods'
names ("<prefix>-conductor-<ordinal>") stay within Kubernetes' 63.
*/}}
{{- define "magnum.fullname" -}}
{{- if contains "magnum" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-magnum" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "magnum.conductor.statefulset" -}}{{ include "magnum.fullname" . }}-conductor{{- end -}}
{{- define "magnum.conductor.discovery" -}}{{ include "magnum.fullname" . }}-conductor-discovery{{- end -}}
{{- define "magnum.conductor.service" -}}{{ include "magnum.fullname" . }}-conductor{{- end -}}
{{- define "magnum.api.name" -}}{{ include "magnum.fullname" . }}-api{{- end -}}
{{- define "magnum.etc.secret" -}}{{ include "magnum.fullname" . }}-etc{{- end -}}

{{/*
Selector labels (helm-toolkit.snippets.kubernetes_metadata_labels): (tuple $envAll component).
*/}}
{{- define "magnum.selector_labels" -}}
{{- $envAll := index . 0 -}}
{{- $component := index . 1 -}}
release_group: {{ $envAll.Values.release_group | default $envAll.Release.Name }}
application: magnum
component: {{ $component }}
{{- end -}}

{{/* Every object's labels: the selector labels and the app.kubernetes.io ones. */}}
{{- define "magnum.labels" -}}
{{- $envAll := index . 0 -}}
{{- $component := index . 1 -}}
{{ include "magnum.selector_labels" . }}
app.kubernetes.io/name: magnum
app.kubernetes.io/component: {{ $component }}
app.kubernetes.io/instance: {{ $envAll.Release.Name }}
app.kubernetes.io/managed-by: {{ $envAll.Release.Service }}
app.kubernetes.io/version: {{ $envAll.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" $envAll.Chart.Name $envAll.Chart.Version }}
{{- end -}}

{{/*
Pod anti-affinity (helm-toolkit.snippets.kubernetes_pod_anti_affinity): (tuple $envAll component).
pod.affinity.anti.type.<component> overrides .default.
*/}}
{{- define "magnum.anti_affinity" -}}
{{- $envAll := index . 0 -}}
{{- $component := index . 1 -}}
{{- $anti := $envAll.Values.pod.affinity.anti -}}
{{- $type := index $anti.type $component | default $anti.type.default -}}
{{- $topologyKey := index $anti.topologyKey $component | default $anti.topologyKey.default -}}
{{- $weight := index $anti.weight $component | default $anti.weight.default -}}
podAntiAffinity:
{{- if eq $type "requiredDuringSchedulingIgnoredDuringExecution" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    - labelSelector:
        matchLabels:
{{ include "magnum.selector_labels" (tuple $envAll $component) | indent 10 }}
      topologyKey: {{ $topologyKey }}
{{- else if eq $type "preferredDuringSchedulingIgnoredDuringExecution" }}
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: {{ int $weight }}
      podAffinityTerm:
        labelSelector:
          matchLabels:
{{ include "magnum.selector_labels" (tuple $envAll $component) | indent 12 }}
        topologyKey: {{ $topologyKey }}
{{- else }}
{{- fail (printf "pod.affinity.anti.type.%s: %q is neither requiredDuringSchedulingIgnoredDuringExecution nor preferredDuringSchedulingIgnoredDuringExecution" $component $type) }}
{{- end }}
{{- end -}}

{{/* A port of endpoints.<service>.port.<name>.default as an integer: (tuple $envAll service name). */}}
{{- define "magnum.port" -}}
{{- $envAll := index . 0 -}}
{{- $port := index (index (index $envAll.Values.endpoints (index . 1)).port (index . 2)) "default" -}}
{{- int $port -}}
{{- end -}}

{{/* A conductor's stable name: (tuple $envAll ordinal). */}}
{{- define "magnum.conductor.fqdn" -}}
{{- $envAll := index . 0 -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "magnum.conductor.statefulset" $envAll) (int (index . 1)) (include "magnum.conductor.discovery" $envAll) $envAll.Release.Namespace $envAll.Values.endpoints.cluster_domain_suffix -}}
{{- end -}}

{{/* A conductor's `ID=RAFT_ADDR@SERVICE_ADDR`: (tuple $envAll ordinal); its node id is ordinal + 1. */}}
{{- define "magnum.conductor.peer" -}}
{{- $envAll := index . 0 -}}
{{- $fqdn := include "magnum.conductor.fqdn" . -}}
{{- printf "%d=%s:%s@%s:%s" (add1 (int (index . 1))) $fqdn (include "magnum.port" (tuple $envAll "magnum_conductor" "raft")) $fqdn (include "magnum.port" (tuple $envAll "magnum_conductor" "service")) -}}
{{- end -}}

{{/* The initial voters' peer specs, comma-separated. */}}
{{- define "magnum.conductor.initial_peers" -}}
{{- $envAll := . -}}
{{- $peers := list -}}
{{- range $i := until (int $envAll.Values.conductor.initial_voters) -}}
{{- $peers = append $peers (include "magnum.conductor.peer" (tuple $envAll $i)) -}}
{{- end -}}
{{- join "," $peers -}}
{{- end -}}

{{/*
Keystone's internal URL (helm-toolkit.endpoints.keystone_endpoint_uri_lookup, internal):
scheme://host:port/path, the host being host_fqdn_override.default or
<hosts.internal>.<namespace>.svc.<cluster_domain_suffix>.
*/}}
{{- define "magnum.endpoints.identity_uri" -}}
{{- $ep := .Values.endpoints.identity -}}
{{- $short := dig "hosts" "internal" "" $ep | default $ep.hosts.default -}}
{{- $host := dig "host_fqdn_override" "default" "" $ep | default (printf "%s.%s.svc.%s" $short ($ep.namespace | default .Release.Namespace) .Values.endpoints.cluster_domain_suffix) -}}
{{- $port := dig "port" "api" "internal" 0 $ep | default $ep.port.api.default -}}
{{- $scheme := dig "scheme" "internal" "" $ep | default $ep.scheme.default -}}
{{- $path := dig "path" "internal" "" $ep | default $ep.path.default -}}
{{- printf "%s://%s:%d%s" $scheme $host (int $port) $path -}}
{{- end -}}

{{/*
A dict of sections of dicts as an INI file (helm-toolkit.utils.to_oslo_conf): keys whose value
is null are left out, lists are joined with commas, and whole numbers print as integers (values
files hold numbers as float64, which Go prints as 1e+06 from a million on).
*/}}
{{- define "magnum.utils.to_oslo_conf" -}}
{{- range $section, $values := . -}}
{{- if kindIs "map" $values }}
[{{ $section }}]
{{- range $key, $value := $values }}
{{- if not (kindIs "invalid" $value) }}
{{ $key }} = {{ include "magnum.utils.oslo_value" $value }}
{{- end }}
{{- end }}
{{ end -}}
{{- end -}}
{{- end -}}

{{- define "magnum.utils.oslo_value" -}}
{{- if kindIs "slice" . -}}
{{- join "," . -}}
{{- else if kindIs "float64" . -}}
{{- if eq . (float64 (int64 .)) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/* Checks of values that no schema of Kubernetes' would catch; rendered by every manifest. */}}
{{- define "magnum.checks" -}}
{{- $voters := int .Values.conductor.initial_voters -}}
{{- if or (lt $voters 1) (eq (mod $voters 2) 0) -}}
{{- fail (printf "conductor.initial_voters must be odd (3 or 5), not %d" $voters) -}}
{{- end -}}
{{- if lt (int .Values.pod.replicas.conductor) $voters -}}
{{- fail (printf "pod.replicas.conductor (%d) is below conductor.initial_voters (%d): the first voters would never all start" (int .Values.pod.replicas.conductor) $voters) -}}
{{- end -}}
{{- if not (has .Values.conductor.bootstrap_if_new (list "install" "always" "never")) -}}
{{- fail (printf "conductor.bootstrap_if_new must be install, always or never, not %v" .Values.conductor.bootstrap_if_new) -}}
{{- end -}}
{{- if lt (int .Values.tls.internal.conductor_certificates) $voters -}}
{{- fail (printf "tls.internal.conductor_certificates (%d) is below conductor.initial_voters (%d)" (int .Values.tls.internal.conductor_certificates) $voters) -}}
{{- end -}}
{{- if not (has .Values.tls.internal.mode (list "strict" "permissive")) -}}
{{- fail (printf "tls.internal.mode must be strict or permissive (tls.internal.enabled=false for plain), not %v" .Values.tls.internal.mode) -}}
{{- end -}}
{{- $conf := .Values.conf.magnum -}}
{{- range $key := list "node_id" "bootstrap" "bootstrap_if_new" -}}
{{- if not (kindIs "invalid" (dig "conductor" $key nil $conf)) -}}
{{- fail (printf "conf.magnum.conductor.%s differs per conductor: the chart sets it in each pod's own file" $key) -}}
{{- end -}}
{{- end -}}
{{- range $key := list "tls_dir" "mode" -}}
{{- if not (kindIs "invalid" (dig "internal" $key nil $conf)) -}}
{{- fail (printf "conf.magnum.internal.%s comes from tls.internal: set that instead" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The shared magnum.conf: conf.magnum with what was left null filled in from endpoints and the
chart's names.
*/}}
{{- define "magnum.conf.shared" -}}
{{- $envAll := . -}}
{{- $conf := deepCopy .Values.conf.magnum -}}
{{- range $s := list "api" "keystone_authtoken" "trust" "conductor" "certificates" "internal" -}}
{{- if not (kindIs "map" (index $conf $s)) -}}
{{- $_ := set $conf $s (dict) -}}
{{- end -}}
{{- end -}}
{{- $servicePort := include "magnum.port" (tuple $envAll "magnum_conductor" "service") -}}
{{- $raftPort := include "magnum.port" (tuple $envAll "magnum_conductor" "raft") -}}
{{- $api := index $conf "api" -}}
{{- if kindIs "invalid" (index $api "port") -}}
{{- $_ := set $api "port" (include "magnum.port" (tuple $envAll "container_infra" "api")) -}}
{{- end -}}
{{- if kindIs "invalid" (index $api "conductors") -}}
{{- $_ := set $api "conductors" (printf "%s.%s.svc.%s:%s" (include "magnum.conductor.service" $envAll) $envAll.Release.Namespace $envAll.Values.endpoints.cluster_domain_suffix $servicePort) -}}
{{- end -}}
{{- $ks := index $conf "keystone_authtoken" -}}
{{- if kindIs "invalid" (index $ks "auth_url") -}}
{{- $_ := set $ks "auth_url" (include "magnum.endpoints.identity_uri" $envAll) -}}
{{- end -}}
{{- range $key, $value := $envAll.Values.endpoints.identity.auth.magnum -}}
{{- if and (kindIs "invalid" (index $ks $key)) (has $key (list "username" "password" "project_name" "user_domain_name" "region_name")) -}}
{{- $_ := set $ks $key $value -}}
{{- end -}}
{{- end -}}
{{- $trust := index $conf "trust" -}}
{{- if kindIs "invalid" (index $trust "trustee_domain_name") -}}
{{- $_ := set $trust "trustee_domain_name" (dig "magnum_stack_user" "domain_name" nil $envAll.Values.endpoints.identity.auth) -}}
{{- end -}}
{{- $conductor := index $conf "conductor" -}}
{{- if kindIs "invalid" (index $conductor "raft_listen") -}}
{{- $_ := set $conductor "raft_listen" (printf "0.0.0.0:%s" $raftPort) -}}
{{- end -}}
{{- if kindIs "invalid" (index $conductor "service_listen") -}}
{{- $_ := set $conductor "service_listen" (printf "0.0.0.0:%s" $servicePort) -}}
{{- end -}}
{{- if kindIs "invalid" (index $conductor "peers") -}}
{{- $_ := set $conductor "peers" (include "magnum.conductor.initial_peers" $envAll) -}}
{{- end -}}
{{- $internal := index $conf "internal" -}}
{{- $_ := set $internal "mode" (ternary $envAll.Values.tls.internal.mode "plain" $envAll.Values.tls.internal.enabled) -}}
# magnum.conf of the release {{ .Release.Name }}, shared by its API nodes and conductors (every
# key: deploy/magnum.conf.example). Rendered from the chart's conf.magnum.
{{ include "magnum.utils.to_oslo_conf" $conf }}
{{- end -}}

{{/* The API nodes' own file, read after magnum.conf. */}}
{{- define "magnum.conf.api" -}}
# The API nodes' part of the configuration: read after magnum.conf, so these keys win.
{{- if .Values.tls.internal.enabled }}
[internal]
tls_dir = /var/lib/magnum/pki/tls/api
{{- end }}
{{ end -}}

{{/* One conductor's own file, read after magnum.conf: (tuple $envAll ordinal). */}}
{{- define "magnum.conf.conductor_node" -}}
{{- $envAll := index . 0 -}}
{{- $ordinal := int (index . 1) -}}
{{- $id := add1 $ordinal -}}
{{- $voter := le (int $id) (int $envAll.Values.conductor.initial_voters) -}}
{{- $mode := $envAll.Values.conductor.bootstrap_if_new -}}
# Conductor {{ $id }} (pod {{ include "magnum.conductor.statefulset" $envAll }}-{{ $ordinal }}): read after magnum.conf, so these keys win.
[conductor]
node_id = {{ $id }}
{{- if $voter }}
{{- if or (eq $mode "always") (and (eq $mode "install") $envAll.Release.IsInstall) }}
bootstrap_if_new = true
{{- end }}
{{- else }}
# A joiner: the first voters and itself; `magnum manage conductor add {{ $id }}` makes it a member.
peers = {{ include "magnum.conductor.initial_peers" $envAll }},{{ include "magnum.conductor.peer" (tuple $envAll $ordinal) }}
{{- end }}
{{- if $envAll.Values.tls.internal.enabled }}

[internal]
tls_dir = /var/lib/magnum/pki/tls/conductor-{{ $id }}
{{- end }}
{{ end -}}
