import { Alert, Button, Card, FileInput, Group, List, Stack, Text, Textarea, Title } from "@mantine/core";
import { useMemo, useRef, useState } from "react";
import { ApiError, can } from "../../api/client";
import { fmtDateTime } from "../../lib/format";
import { useSession } from "../../lib/session";
import { type FieldError, type LineModelDoc, fieldErrors, prettyWithLines, twin } from "../../lib/twin";
import { Feedback } from "../Feedback";

/** The line model as JSON: read by everyone; engineers paste, upload (JSON) or edit it and save it, the service's
 * problems listed by their path and the line of the text they point at; or delete it. */
export function ModelView({ line, doc, onSaved }: { line: string; doc: LineModelDoc | null; onSaved: (d: LineModelDoc | null) => void }) {
  const { me } = useSession();
  const engineer = can(me.role, "engineer");
  const initial = useMemo(() => (doc ? prettyWithLines(doc.model).text : ""), [doc]);
  const [text, setText] = useState(initial);
  const [file, setFile] = useState<File | null>(null);
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const area = useRef<HTMLTextAreaElement>(null);
  const dirty = text !== initial;

  async function load(f: File | null) {
    setFile(f);
    if (!f) return;
    setErrors([]);
    setMessage(null);
    const t = await f.text();
    try {
      setText(prettyWithLines(JSON.parse(t)).text);
    } catch {
      setMessage({
        ok: false,
        text: `${f.name} is not JSON. The editor takes the line model as JSON; convert a YAML model first (for example: python -c "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))" model.yaml).`,
      });
    }
  }

  async function save(e: React.FormEvent) {
    e.preventDefault();
    setErrors([]);
    setMessage(null);
    let model: unknown;
    try {
      model = JSON.parse(text);
    } catch (err) {
      return setMessage({ ok: false, text: `The model is not valid JSON: ${(err as Error).message}` });
    }
    // the text as the service's paths will be found in (same content, normalised layout)
    const { text: pretty, lines } = prettyWithLines(model);
    setText(pretty);
    setBusy(true);
    try {
      const d = await twin.putModel(line, model);
      onSaved(d);
      setText(prettyWithLines(d.model).text);
      setMessage({ ok: true, text: `Saved: version ${d.version} of ${line}'s model.` });
    } catch (err) {
      if (err instanceof ApiError && err.status === 422) {
        const list = fieldErrors(err.body, lines);
        setErrors(list.length ? list : [{ path: "", message: err.message }]);
      } else setMessage({ ok: false, text: (err as Error).message });
    } finally {
      setBusy(false);
    }
  }

  async function remove() {
    setMessage(null);
    setBusy(true);
    try {
      await twin.deleteModel(line);
      setConfirmDelete(false);
      setText("");
      onSaved(null);
      setMessage({ ok: true, text: `${line}'s model is deleted (its event history stays).` });
    } catch (err) {
      setMessage({ ok: false, text: (err as Error).message });
    } finally {
      setBusy(false);
    }
  }

  function goTo(lineNo: number) {
    const el = area.current;
    if (!el) return;
    const lines = el.value.split("\n");
    const start = lines.slice(0, lineNo - 1).reduce((n, l) => n + l.length + 1, 0);
    el.focus();
    el.setSelectionRange(start, start + (lines[lineNo - 1]?.length ?? 0));
    const lh = parseFloat(getComputedStyle(el).lineHeight) || 18;
    el.scrollTop = Math.max(0, (lineNo - 4) * lh);
  }

  return (
    <Stack data-testid="model-view">
      <Card withBorder>
        <Group justify="space-between" mb="xs">
          <Title order={3} size="h5">
            Line model
          </Title>
          <Text size="sm" c="dimmed" data-testid="model-version">
            {doc ? `version ${doc.version} · updated ${fmtDateTime(doc.updated_at)}` : "no model yet"}
          </Text>
        </Group>
        {!doc && (
          <Alert color="blue" mb="sm" data-testid="model-empty">
            {engineer
              ? "No model yet. Paste the line's model (JSON) below or upload a .json file, then save. It lists the machines with their operation and cycle time (cycle_time_s), the buffers before an operation with their capacity, the products' routings, and optionally inspections, shifts and failures (mtbf_h, mttr_min)."
              : "No model yet: an engineer uploads the line's model here."}
          </Alert>
        )}
        <Feedback msg={message} mb="sm" onClose={() => setMessage(null)} data-testid="model-message" />
        {errors.length > 0 && (
          <Alert color="red" mb="sm" title="The service refused the model" data-testid="model-errors">
            <List size="sm">
              {errors.map((e, i) => (
                <List.Item key={i} data-testid="model-error" data-path={e.path}>
                  <code>{e.path || "model"}</code>: {e.message}
                  {e.line !== undefined && (
                    <>
                      {" "}
                      <Button variant="subtle" size="compact-xs" onClick={() => goTo(e.line!)} aria-label={`Go to line ${e.line} (${e.path})`}>
                        line {e.line}
                      </Button>
                    </>
                  )}
                </List.Item>
              ))}
            </List>
          </Alert>
        )}
        {engineer ? (
          <form onSubmit={save} aria-label="Line model">
            <Stack gap="xs">
              <FileInput
                label="Upload a model file (JSON)"
                placeholder="Choose a .json file"
                accept="application/json,.json"
                value={file}
                onChange={load}
                clearable
                clearButtonProps={{ "aria-label": "Clear the model file" }}
                data-testid="model-file"
              />
              <Textarea
                ref={area}
                label="Model (JSON)"
                value={text}
                onChange={(e) => setText(e.currentTarget.value)}
                autosize
                minRows={12}
                maxRows={30}
                spellCheck={false}
                classNames={{ input: "lw-json" }}
                error={errors.length > 0 ? `${errors.length} problem${errors.length > 1 ? "s" : ""}, listed above` : undefined}
                data-testid="model-text"
              />
              <Group>
                <Button type="submit" loading={busy} disabled={!text.trim() || (!dirty && !!doc)} data-testid="model-save">
                  Save
                </Button>
                {dirty && doc && (
                  <Button variant="default" onClick={() => (setText(initial), setErrors([]))}>
                    Discard changes
                  </Button>
                )}
                {doc &&
                  (confirmDelete ? (
                    <>
                      <Text size="sm">Delete {line}'s model? The map, OEE and what-if need one.</Text>
                      <Button color="red" onClick={remove} loading={busy} data-testid="model-delete-confirm">
                        Delete the model
                      </Button>
                      <Button variant="default" onClick={() => setConfirmDelete(false)}>
                        Keep it
                      </Button>
                    </>
                  ) : (
                    <Button variant="outline" color="red" onClick={() => setConfirmDelete(true)} data-testid="model-delete">
                      Delete…
                    </Button>
                  ))}
              </Group>
            </Stack>
          </form>
        ) : (
          doc && (
            <pre className="lw-pre lw-model-pre" tabIndex={0} aria-label={`${line}'s line model (JSON)`} data-testid="model-json">
              {initial}
            </pre>
          )
        )}
      </Card>
    </Stack>
  );
}
