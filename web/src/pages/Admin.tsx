import {
  Alert,
  Badge,
  Button,
  Card,
  Code,
  CopyButton,
  Group,
  MultiSelect,
  PasswordInput,
  Select,
  Stack,
  Switch,
  Table,
  Tabs,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { useCallback, useEffect, useState } from "react";
import { ApiError, OFFLINE, api, call, errorMessage, getToken, type ApiKey, type Role, type Schemas, type User } from "../api/client";
import { download } from "../lib/csv";
import { fmtDateTime } from "../lib/format";
import { useSession } from "../lib/session";
import { Feedback } from "../components/Feedback";

const ROLES: Role[] = ["admin", "engineer", "operator", "viewer"];


function useAction(reload: () => Promise<void>) {
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const run = async (f: () => Promise<unknown>, ok: string) => {
    setMsg(null);
    try {
      await f();
      setMsg({ ok: true, text: ok });
      await reload();
      return true;
    } catch (e) {
      setMsg({ ok: false, text: (e as Error).message });
      return false;
    }
  };
  return { msg, setMsg, run };
}

function Users() {
  const { me } = useSession();
  const [users, setUsers] = useState<User[] | null>(null);
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("operator");
  const load = useCallback(async () => setUsers(await call(api.GET("/api/v1/users"))), []);
  const { msg, setMsg, run } = useAction(load);
  useEffect(() => {
    load().catch((e) => setMsg({ ok: false, text: (e as Error).message }));
  }, [load, setMsg]);

  const patch = (u: User, body: Schemas["UserPatch"], ok: string) =>
    run(() => call(api.PATCH("/api/v1/users/{user_id}", { params: { path: { user_id: u.id } }, body })), ok);

  return (
    <Stack>
      <Feedback data-testid="admin-message" msg={msg} onClose={() => setMsg(null)} />
      <Card withBorder>
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            if (await run(() => call(api.POST("/api/v1/users", { body: { name, password, role } })), `User ${name} created.`)) {
              setName("");
              setPassword("");
            }
          }}
        >
          <Group align="end">
            <TextInput label="User name" value={name} onChange={(e) => setName(e.currentTarget.value)} required maxLength={100} />
            <PasswordInput
              label="Password"
              placeholder="at least 8 characters"
              autoComplete="new-password"
              visibilityToggleButtonProps={{ "aria-label": "Show or hide the characters typed" }}
              w={220}
              value={password}
              onChange={(e) => setPassword(e.currentTarget.value)}
              required
              minLength={8}
            />
            <Select label="Role" data={ROLES} value={role} onChange={(v) => v && setRole(v as Role)} allowDeselect={false} w={140} />
            <Button type="submit">Add user</Button>
          </Group>
        </form>
      </Card>
      <Table.ScrollContainer minWidth={560}>
        <Table data-testid="users-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Role</Table.Th>
              <Table.Th>Active</Table.Th>
              <Table.Th>Created</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {users?.map((u) => (
              <Table.Tr key={u.id}>
                <Table.Td>
                  {u.name}
                  {u.name === me.name && (
                    <Badge ml="xs" size="xs" variant="outline">
                      you
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>
                  <Select
                    aria-label={`Role of ${u.name}`}
                    data={ROLES}
                    value={u.role}
                    onChange={(v) => v && v !== u.role && patch(u, { role: v as Role }, `${u.name} is now ${v}.`)}
                    allowDeselect={false}
                    w={130}
                    size="xs"
                    disabled={u.name === me.name}
                  />
                </Table.Td>
                <Table.Td>
                  <Switch
                    aria-label={`${u.name} may sign in`}
                    label={u.active ? "can sign in" : "blocked"}
                    data-testid="user-active"
                    checked={u.active}
                    disabled={u.name === me.name}
                    onChange={(e) =>
                      patch(u, { active: e.currentTarget.checked }, `${u.name} ${e.currentTarget.checked ? "can sign in again" : "can no longer sign in"}.`)
                    }
                  />
                </Table.Td>
                <Table.Td>{fmtDateTime(u.created_at)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
    </Stack>
  );
}

function Keys() {
  const { stations } = useSession();
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("operator");
  const [scope, setScope] = useState<string[]>([]);
  const [created, setCreated] = useState<Schemas["ApiKeyCreated"] | null>(null);
  const load = useCallback(async () => setKeys(await call(api.GET("/api/v1/api-keys"))), []);
  const { msg, setMsg, run } = useAction(load);
  useEffect(() => {
    load().catch((e) => setMsg({ ok: false, text: (e as Error).message }));
  }, [load, setMsg]);
  return (
    <Stack>
      <Feedback data-testid="admin-message" msg={msg} onClose={() => setMsg(null)} />
      {created && (
        <Alert color="yellow" title="Copy the key now: it is shown only once" withCloseButton closeButtonLabel="Dismiss" onClose={() => setCreated(null)} data-testid="new-key">
          <Group gap="xs">
            <Code fz="sm" data-testid="new-key-value">
              {created.key}
            </Code>
            <CopyButton value={created.key}>
              {({ copied, copy }) => (
                <Button size="xs" variant="default" onClick={copy}>
                  {copied ? "Copied" : "Copy"}
                </Button>
              )}
            </CopyButton>
          </Group>
          <Text size="sm" mt="xs">
            Cameras send it in an <Code>X-API-Key</Code> header.
          </Text>
        </Alert>
      )}
      <Card withBorder>
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            await run(async () => {
              const body = { name, role, stations: scope.length ? scope : null };
              setCreated(await call(api.POST("/api/v1/api-keys", { body })));
              setName("");
              setScope([]);
            }, `Key ${name} created.`);
          }}
        >
          <Group align="end">
            <TextInput label="Key name" placeholder="e.g. camera line 3" value={name} onChange={(e) => setName(e.currentTarget.value)} required maxLength={100} />
            <Select label="Role" data={ROLES} value={role} onChange={(v) => v && setRole(v as Role)} allowDeselect={false} w={140} />
            <MultiSelect
              label="Only at stations"
              placeholder={scope.length ? undefined : "any station"}
              data={stations.map((s) => s.name)}
              value={scope}
              onChange={setScope}
              searchable
              clearable
              w={240}
            />
            <Button type="submit">Create key</Button>
          </Group>
        </form>
      </Card>
      {keys && keys.length === 0 && <Text c="gray.7">No API keys yet.</Text>}
      {keys && keys.length > 0 && (
        <Table.ScrollContainer minWidth={560}>
          <Table>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Prefix</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th>Stations</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th>State</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {keys.map((k) => (
                <Table.Tr key={k.id}>
                  <Table.Td>{k.name}</Table.Td>
                  <Table.Td ff="monospace">{k.prefix}…</Table.Td>
                  <Table.Td>{k.role}</Table.Td>
                  <Table.Td>{k.stations ? k.stations.join(", ") : "any"}</Table.Td>
                  <Table.Td>{k.last_used_at ? fmtDateTime(k.last_used_at) : "never"}</Table.Td>
                  <Table.Td>
                    {k.revoked ? (
                      <Badge color="gray.7" data-testid="key-state">
                        revoked
                      </Badge>
                    ) : (
                      <Group gap="xs" wrap="nowrap">
                      <Badge color="#237a35" data-testid="key-state">
                        active
                      </Badge>
                      <Button
                        size="xs"
                        color="red.9"
                        variant="outline"
                        onClick={() =>
                          confirm(`Revoke the key ${k.name}? Clients using it stop working.`) &&
                          run(() => call(api.DELETE("/api/v1/api-keys/{key_id}", { params: { path: { key_id: k.id } } })), `Key ${k.name} revoked.`)
                        }
                      >
                        Revoke
                      </Button>
                      </Group>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}

function Stations() {
  const { stations, reloadStations } = useSession();
  const [name, setName] = useState("");
  const { msg, setMsg, run } = useAction(reloadStations);
  return (
    <Stack>
      <Feedback data-testid="admin-message" msg={msg} onClose={() => setMsg(null)} />
      <Card withBorder>
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            if (await run(() => call(api.POST("/api/v1/stations", { body: { name } })), `Station ${name} created.`)) setName("");
          }}
        >
          <Group align="end">
            <TextInput
              label="Station name"
              description="letters, digits, - _ ."
              placeholder="e.g. line3-cam1"
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
              required
              maxLength={100}
              pattern="[A-Za-z0-9_.\-]+"
            />
            <Button type="submit">Add station</Button>
          </Group>
        </form>
      </Card>
      {stations.length === 0 ? (
        <Text c="gray.7">No stations yet.</Text>
      ) : (
        <Table>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Station</Table.Th>
              <Table.Th>Active model</Table.Th>
              <Table.Th>Created</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {stations.map((s) => (
              <Table.Tr key={s.id}>
                <Table.Td>{s.name}</Table.Td>
                <Table.Td>{s.active_model_id ? <a href="#/models">#{s.active_model_id}</a> : "none"}</Table.Td>
                <Table.Td>{fmtDateTime(s.created_at)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}

type AuditEntry = Schemas["AuditEntryOut"];

const AUDIT_FAMILIES = [
  { value: "", label: "Everything" },
  { value: "auth", label: "Sign-ins and sign-outs" },
  { value: "user", label: "Users and roles" },
  { value: "api_key", label: "API keys" },
  { value: "model", label: "Models activated and rolled back" },
  { value: "inspection", label: "Reviews and deletions" },
  { value: "dataset", label: "Datasets" },
  { value: "station", label: "Stations" },
];

function detailText(d: AuditEntry["detail"]): string {
  return Object.entries(d)
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(" → ") : String(v)}`)
    .join("; ");
}

/** Every audit entry (or the filtered ones) as CSV, from the service's export (the file is the service's). */
async function exportAudit(action: string) {
  const q = new URLSearchParams({ format: "csv", ...(action ? { action } : {}) });
  let r: Response;
  try {
    r = await fetch(`/api/v1/audit/export?${q}`, { headers: { Authorization: `Bearer ${getToken() ?? ""}` } });
  } catch {
    throw new ApiError(OFFLINE, 0);
  }
  if (!r.ok) throw new ApiError(errorMessage(r.status, await r.json().catch(() => undefined)), r.status);
  download(`linewatch-audit${action ? `-${action}` : ""}.csv`, await r.text());
}

function Audit() {
  const [action, setAction] = useState("");
  const [items, setItems] = useState<AuditEntry[] | null>(null);
  const [next, setNext] = useState<number | null>(null);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const load = useCallback(
    async (cursor?: number) => {
      const query = { limit: 100, ...(action ? { action } : {}), ...(cursor ? { cursor } : {}) };
      const page = await call(api.GET("/api/v1/audit", { params: { query } }));
      setItems((old) => (cursor && old ? [...old, ...page.items] : page.items));
      setNext(page.next_cursor ?? null);
    },
    [action],
  );
  useEffect(() => {
    load().catch((e) => setMsg({ ok: false, text: (e as Error).message }));
  }, [load]);
  return (
    <Stack>
      <Feedback data-testid="admin-message" msg={msg} onClose={() => setMsg(null)} />
      <Group align="end">
        <Select label="Show" data={AUDIT_FAMILIES} value={action} onChange={(v) => setAction(v ?? "")} allowDeselect={false} w={280} />
        <Button variant="default" onClick={() => exportAudit(action).catch((e) => setMsg({ ok: false, text: (e as Error).message }))}>
          Export CSV
        </Button>
      </Group>
      {items && items.length === 0 && <Text c="gray.7">Nothing recorded yet.</Text>}
      {items && items.length > 0 && (
        <Table.ScrollContainer minWidth={720}>
          <Table data-testid="audit-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>When</Table.Th>
                <Table.Th>Who</Table.Th>
                <Table.Th>What</Table.Th>
                <Table.Th>To</Table.Th>
                <Table.Th>Details</Table.Th>
                <Table.Th>From</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((e) => (
                <Table.Tr key={e.id}>
                  <Table.Td>{fmtDateTime(e.created_at)}</Table.Td>
                  <Table.Td>{e.actor}</Table.Td>
                  <Table.Td ff="monospace">{e.action}</Table.Td>
                  <Table.Td>{e.target ?? ""}</Table.Td>
                  <Table.Td>{detailText(e.detail)}</Table.Td>
                  <Table.Td ff="monospace">{e.client ?? ""}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      {next !== null && (
        <Button variant="default" onClick={() => load(next).catch((e) => setMsg({ ok: false, text: (e as Error).message }))}>
          Older entries
        </Button>
      )}
    </Stack>
  );
}

export default function AdminPage() {
  return (
    <Stack>
      <Title order={2}>Admin</Title>
      <Tabs defaultValue="users" keepMounted={false}>
        <Tabs.List mb="md">
          <Tabs.Tab value="users">Users and roles</Tabs.Tab>
          <Tabs.Tab value="keys">API keys</Tabs.Tab>
          <Tabs.Tab value="stations">Stations</Tabs.Tab>
          <Tabs.Tab value="audit">Audit log</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="users">
          <Users />
        </Tabs.Panel>
        <Tabs.Panel value="keys">
          <Keys />
        </Tabs.Panel>
        <Tabs.Panel value="stations">
          <Stations />
        </Tabs.Panel>
        <Tabs.Panel value="audit">
          <Audit />
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}
