//! `GET /api/$metadata`: the OData CSDL document schema-driven MDE clients read first.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// The part of MDE's schema fileintel serves: the `File` entity (properties in the order the JSON
/// carries them), the `DeterminationType` enum, the `InOrgFileStats` complex type and the `Files`
/// entity set.
pub const METADATA: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="microsoft.windowsDefenderATP.api" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="File">
        <Key>
          <PropertyRef Name="sha1" />
        </Key>
        <Property Name="sha1" Type="Edm.String" Nullable="false" />
        <Property Name="sha256" Type="Edm.String" />
        <Property Name="md5" Type="Edm.String" />
        <Property Name="globalPrevalence" Type="Edm.Int64" />
        <Property Name="globalFirstObserved" Type="Edm.DateTimeOffset" />
        <Property Name="globalLastObserved" Type="Edm.DateTimeOffset" />
        <Property Name="size" Type="Edm.Int64" />
        <Property Name="fileType" Type="Edm.String" />
        <Property Name="isPeFile" Type="Edm.Boolean" />
        <Property Name="filePublisher" Type="Edm.String" />
        <Property Name="fileProductName" Type="Edm.String" />
        <Property Name="signer" Type="Edm.String" />
        <Property Name="issuer" Type="Edm.String" />
        <Property Name="signerHash" Type="Edm.String" />
        <Property Name="isValidCertificate" Type="Edm.Boolean" />
        <Property Name="determinationType" Type="microsoft.windowsDefenderATP.api.DeterminationType" Nullable="false" />
        <Property Name="determinationValue" Type="Edm.String" />
      </EntityType>
      <EnumType Name="DeterminationType">
        <Member Name="Unknown" Value="0" />
        <Member Name="Malware" Value="1" />
        <Member Name="Unwanted" Value="2" />
        <Member Name="Clean" Value="3" />
        <Member Name="Pua" Value="4" />
      </EnumType>
      <ComplexType Name="InOrgFileStats">
        <Property Name="sha1" Type="Edm.String" />
        <Property Name="orgPrevalence" Type="Edm.String" />
        <Property Name="organizationPrevalence" Type="Edm.Int64" Nullable="false" />
        <Property Name="orgFirstSeen" Type="Edm.DateTimeOffset" />
        <Property Name="orgLastSeen" Type="Edm.DateTimeOffset" />
        <Property Name="globalPrevalence" Type="Edm.String" />
        <Property Name="globallyPrevalence" Type="Edm.Int64" Nullable="false" />
        <Property Name="globalFirstObserved" Type="Edm.DateTimeOffset" />
        <Property Name="globalLastObserved" Type="Edm.DateTimeOffset" />
        <Property Name="topFileNames" Type="Collection(Edm.String)" />
      </ComplexType>
      <EntityContainer Name="EntityContainer">
        <EntitySet Name="Files" EntityType="microsoft.windowsDefenderATP.api.File" />
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"#;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/$metadata", get(get_metadata)).route("/api/v1.0/$metadata", get(get_metadata))
}

async fn get_metadata() -> Response {
    let mut response = METADATA.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    headers.insert("odata-version", HeaderValue::from_static("4.0"));
    response
}
