import { Alert, Button, Card, Group, NumberInput, Table, Text, TextInput, Title } from "@mantine/core";
import { useState } from "react";
import { api, call, can } from "../api/client";
import type { Machine } from "../lib/machines";
import { useSession } from "../lib/session";

interface Row {
  name: string;
  unit: string;
  low: number | string;
  high: number | string;
  added?: boolean;
}

const rows = (m: Machine): Row[] => m.sensors.map((s) => ({ name: s.name, unit: s.unit, low: s.low ?? "", high: s.high ?? "" }));
const num = (v: number | string) => (v === "" || v === null ? null : Number(v));

/** The machine's sensors and their expected ranges (a reading outside one raises an alert); engineers edit them and
 * add sensors. */
export function SensorEditor({ machine, onSaved }: { machine: Machine; onSaved: (m: Machine) => void }) {
  const { me } = useSession();
  const engineer = can(me.role, "engineer");
  const [editing, setEditing] = useState<Row[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  function set(i: number, patch: Partial<Row>) {
    setEditing((r) => r && r.map((x, k) => (k === i ? { ...x, ...patch } : x)));
  }

  async function save() {
    if (!editing) return;
    setBusy(true);
    setError(null);
    try {
      const m = await call(
        api.PUT("/api/v1/machines/{name}", {
          params: { path: { name: machine.name } },
          body: {
            name: machine.name,
            line: machine.line,
            type: machine.type,
            description: machine.description,
            stations: machine.stations,
            sensors: editing.filter((r) => r.name.trim()).map((r) => ({ name: r.name.trim(), unit: r.unit, low: num(r.low), high: num(r.high) })),
          },
        }),
      );
      onSaved(m);
      setEditing(null);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  }

  const shown = editing ?? rows(machine);
  return (
    <Card withBorder data-testid="sensor-definitions">
      <Group justify="space-between" mb="xs">
        <Title order={3} size="h4">
          Sensors and expected ranges
        </Title>
        {engineer && !editing && (
          <Button size="xs" variant="default" onClick={() => setEditing(rows(machine))} data-testid="edit-sensors">
            Edit
          </Button>
        )}
      </Group>
      <Text size="xs" c="gray.7" mb="xs">
        A reading below the low or above the high end of its sensor's range raises an alert, with or without a model.
      </Text>
      {error && (
        <Alert color="red" mb="xs" role="alert">
          {error}
        </Alert>
      )}
      <Table.ScrollContainer minWidth={480}>
        <Table>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Sensor</Table.Th>
              <Table.Th>Unit</Table.Th>
              <Table.Th>Low</Table.Th>
              <Table.Th>High</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {shown.map((r, i) =>
              editing ? (
                <Table.Tr key={i}>
                  <Table.Td>
                    {r.added ? (
                      <TextInput size="xs" aria-label={`Name of new sensor ${i + 1}`} value={r.name} onChange={(e) => set(i, { name: e.currentTarget.value })} />
                    ) : (
                      r.name
                    )}
                  </Table.Td>
                  <Table.Td>
                    <TextInput size="xs" aria-label={`Unit of ${r.name || "the new sensor"}`} value={r.unit} onChange={(e) => set(i, { unit: e.currentTarget.value })} w={90} />
                  </Table.Td>
                  <Table.Td>
                    <NumberInput size="xs" aria-label={`Low end of ${r.name || "the new sensor"}`} value={r.low} onChange={(v) => set(i, { low: v })} w={110} />
                  </Table.Td>
                  <Table.Td>
                    <NumberInput size="xs" aria-label={`High end of ${r.name || "the new sensor"}`} value={r.high} onChange={(v) => set(i, { high: v })} w={110} />
                  </Table.Td>
                </Table.Tr>
              ) : (
                <Table.Tr key={r.name}>
                  <Table.Td>{r.name}</Table.Td>
                  <Table.Td>{r.unit || "–"}</Table.Td>
                  <Table.Td>{r.low === "" ? "–" : r.low}</Table.Td>
                  <Table.Td>{r.high === "" ? "–" : r.high}</Table.Td>
                </Table.Tr>
              ),
            )}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {editing && (
        <Group mt="sm">
          <Button size="xs" variant="default" onClick={() => setEditing([...editing, { name: "", unit: "", low: "", high: "", added: true }])}>
            Add a sensor
          </Button>
          <Button size="xs" onClick={save} loading={busy} data-testid="save-sensors">
            Save
          </Button>
          <Button size="xs" variant="subtle" onClick={() => (setEditing(null), setError(null))}>
            Cancel
          </Button>
        </Group>
      )}
    </Card>
  );
}
