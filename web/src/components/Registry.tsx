import { Button, Card, Group, Progress, Text, TextInput, Title } from "@mantine/core";
import { useState } from "react";
import { api, call, type Job, type Model, type Schemas } from "../api/client";
import { useFollow } from "../lib/useFollow";
import { Feedback } from "./Feedback";

/** a registered version's reference: NAME, NAME/VERSION or NAME@ALIAS (the API's pattern) */
export const REF = /^[^/@\x00-\x1f\x7f]+(\/[0-9]{1,9}|@[A-Za-z_][A-Za-z0-9_-]*)?$/;
const NAME = /^[^/@\x00-\x1f\x7f]+$/;
const ALIAS = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Where an imported version came from (``metrics.registry``), or null. */
export interface RegistryOrigin {
  ref: string;
  name: string;
  version: number;
  run_id: string;
}

export function registryOf(m: Model): RegistryOrigin | null {
  const r = (m.metrics as Record<string, unknown> | null)?.registry;
  return r && typeof r === "object" ? (r as RegistryOrigin) : null;
}

export function registryLine(r: RegistryOrigin): string {
  return `Imported from the model registry: ${r.name} version ${r.version} (asked as ${r.ref}; MLflow run ${r.run_id}).`;
}

/** An engineer imports a version of the team's MLflow Model Registry (a model trained with `linewatch train` on a
 * workstation and pushed there) as a model version: a job; ``onDone`` is told of it (null: queued, listed as
 * importing). */
export function RegistryImport({ onDone }: { onDone: (newModelId: number | null) => void }) {
  const [ref, setRef] = useState("");
  const [name, setName] = useState("");
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const { job, follow, running } = useFollow((j: Job) => {
    const result = j.result as { model_id?: number; registered?: string; version?: number } | null;
    if (j.status === "succeeded" && result?.model_id) {
      setMessage({
        ok: true,
        text: `Version #${result.model_id} is ready (${result.registered} version ${result.version}): activate it on a station.`,
      });
      onDone(result.model_id);
    } else {
      setMessage({ ok: false, text: `The import ${j.status}: ${j.error ?? j.message}` });
      onDone(null);
    }
  }, 2000);
  const badRef = ref.trim() !== "" && !REF.test(ref.trim());

  async function start() {
    setMessage(null);
    const body: Schemas["ModelImportIn"] = { ref: ref.trim() };
    if (name.trim()) body.name = name.trim();
    try {
      follow(await call(api.POST("/api/v1/registry/import", { body })));
      onDone(null);
    } catch (e) {
      setMessage({ ok: false, text: (e as Error).message });
    }
  }

  return (
    <Card withBorder data-testid="registry-import">
      <Title order={4} size="h5" mb={4}>
        Import from the model registry
      </Title>
      <Text size="sm" c="gray.7" mb="xs">
        A model pushed to the team's MLflow registry (<code>linewatch registry push</code>) becomes a version here, checked file by file
        and exported for ONNX Runtime; stations keep theirs until you activate it.
      </Text>
      <Group align="end">
        <TextInput
          label="Registered version"
          placeholder="bottle-cam1@production"
          description="NAME, NAME/VERSION or NAME@ALIAS"
          value={ref}
          onChange={(e) => setRef(e.currentTarget.value)}
          error={badRef ? "NAME, NAME/3 or NAME@alias" : undefined}
          w={280}
          data-testid="registry-ref"
        />
        <TextInput
          label="Name here (optional)"
          placeholder="NAME vN (registry)"
          value={name}
          onChange={(e) => setName(e.currentTarget.value)}
          w={220}
          data-testid="registry-name"
        />
        <Button onClick={start} disabled={running || !ref.trim() || badRef} loading={running} data-testid="registry-import-start">
          Import as a new version
        </Button>
      </Group>
      {running && job && <Progress value={job.progress * 100} mt="sm" aria-label="Import progress" data-testid="registry-progress" />}
      <Feedback msg={message} mt="sm" onClose={() => setMessage(null)} data-testid="registry-message" />
    </Card>
  );
}

/** An engineer pushes a ready version to the team's MLflow registry as a new version of a registered model, an alias
 * (e.g. production) pointed at it. */
export function RegistryPublish({ model }: { model: Model }) {
  const [name, setName] = useState("");
  const [alias, setAlias] = useState("");
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const badName = name.trim() !== "" && !NAME.test(name.trim());
  const badAlias = alias.trim() !== "" && !ALIAS.test(alias.trim());

  async function publish() {
    setBusy(true);
    setMessage(null);
    const body: Schemas["ModelPublishIn"] = { name: name.trim() };
    if (alias.trim()) body.alias = alias.trim();
    try {
      const done = await call(api.POST("/api/v1/models/{model_id}/publish", { params: { path: { model_id: model.id } }, body }));
      setMessage({
        ok: true,
        text: `Published as ${done.name} version ${done.version}${done.alias ? `, alias ${done.alias}` : ""} (MLflow run ${done.run_id}).`,
      });
    } catch (e) {
      setMessage({ ok: false, text: (e as Error).message });
    } finally {
      setBusy(false);
    }
  }

  return (
    <Card withBorder mb="md" data-testid="registry-publish">
      <Title order={4} size="h5" mb={4}>
        Publish to the model registry
      </Title>
      <Group align="end">
        <TextInput
          label="Registered model"
          placeholder="bottle-cam1"
          value={name}
          onChange={(e) => setName(e.currentTarget.value)}
          error={badName ? "no '/' or '@'" : undefined}
          w={220}
          data-testid="publish-name"
        />
        <TextInput
          label="Alias (optional)"
          placeholder="production"
          value={alias}
          onChange={(e) => setAlias(e.currentTarget.value)}
          error={badAlias ? "a letter, then letters, digits, _ or -" : undefined}
          w={180}
          data-testid="publish-alias"
        />
        <Button variant="default" onClick={publish} disabled={busy || !name.trim() || badName || badAlias} loading={busy} data-testid="publish-start">
          Publish this version
        </Button>
      </Group>
      <Feedback msg={message} mt="sm" onClose={() => setMessage(null)} data-testid="publish-message" />
    </Card>
  );
}
