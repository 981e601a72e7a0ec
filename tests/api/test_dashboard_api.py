"""What the dashboard needs from the API beyond the first part: user administration, per-image test scores."""


def test_admin_changes_role_and_deactivates(api):
    c = api.client
    adm, viewer = api.user("admin"), api.user("viewer")
    users = c.get("/api/v1/users", headers=adm).json()
    me = next(u for u in users if u["name"] == "viewer-user")
    assert c.patch(f"/api/v1/users/{me['id']}", json={"role": "operator"}, headers=viewer).status_code == 403
    r = c.patch(f"/api/v1/users/{me['id']}", json={"role": "operator"}, headers=adm)
    assert r.status_code == 200 and r.json()["role"] == "operator"
    assert c.get("/api/v1/auth/me", headers=viewer).json()["role"] == "operator"
    assert c.patch(f"/api/v1/users/{me['id']}", json={"active": False}, headers=adm).json()["active"] is False
    assert c.get("/api/v1/auth/me", headers=viewer).status_code == 401
    old = {"username": "viewer-user", "password": "password-viewer"}
    assert c.post("/api/v1/auth/login", json=old).status_code == 401
    c.patch(f"/api/v1/users/{me['id']}", json={"active": True, "password": "a-new-password"}, headers=adm)
    ok_login = {"username": "viewer-user", "password": "a-new-password"}
    assert c.post("/api/v1/auth/login", json=ok_login).status_code == 200
    assert c.patch("/api/v1/users/9999", json={"role": "viewer"}, headers=adm).status_code == 404
    admin_id = next(u["id"] for u in users if u["name"] == "admin-user")
    itself = c.patch(f"/api/v1/users/{admin_id}", json={"role": "viewer"}, headers=adm)
    assert itself.status_code == 409 and "yourself" in itself.json()["detail"]
    assert c.patch(f"/api/v1/users/{admin_id}", json={"active": False}, headers=adm).status_code == 409
    assert c.patch(f"/api/v1/users/{admin_id}", json={"active": 0}, headers=adm).status_code == 422
    # another admin may demote this one, not the last one left
    c.patch(f"/api/v1/users/{me['id']}", json={"role": "admin"}, headers=adm)
    other = {"Authorization": "Bearer " + c.post("/api/v1/auth/login", json=ok_login).json()["access_token"]}
    assert c.patch(f"/api/v1/users/{admin_id}", json={"role": "engineer"}, headers=other).json()["role"] == "engineer"
    assert c.patch(f"/api/v1/users/{me['id']}", json={"password": "short"}, headers=other).status_code == 422


def test_test_scores_of_a_model_without_evaluation(api):
    from linewatch.store.tables import ModelVersion

    with api.ctx.sessions() as s, s.begin():
        mv = ModelVersion(name="m", method="patchcore", backbone="efficientnet_lite0", image_size=64)
        s.add(mv)
        s.flush()
        model_id = mv.id
    viewer = api.user("viewer")
    r = api.client.get(f"/api/v1/models/{model_id}/test-scores", headers=viewer)
    assert r.status_code == 200 and r.json() == {"model_id": model_id, "threshold": None, "items": []}
    assert api.client.get("/api/v1/models/9999/test-scores", headers=viewer).status_code == 404
