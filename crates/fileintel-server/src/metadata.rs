//! `GET /api/$metadata`: the OData CSDL document schema-driven MDE clients read first.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::routes::Routes;

/// The part of MDE's schema fileintel serves: every entity set and type an answer's
/// `@odata.context` names (`Files`, `Machines`, `Indicators`, `InOrgFileStats`), with their
/// properties in the order the JSON carries them and the enums and complex types they use. The
/// enums list the members fileintel sends. `Indicator` is open: fileintel's answers also carry
/// `source`, `sourceType` and `externalID`, as MDE's own answers do.
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
      <EntityType Name="Machine">
        <Key>
          <PropertyRef Name="id" />
        </Key>
        <Property Name="id" Type="Edm.String" Nullable="false" />
        <Property Name="mergedIntoMachineId" Type="Edm.String" />
        <Property Name="isPotentialDuplication" Type="Edm.Boolean" Nullable="false" />
        <Property Name="isExcluded" Type="Edm.Boolean" Nullable="false" />
        <Property Name="exclusionReason" Type="microsoft.windowsDefenderATP.api.ExclusionReason" />
        <Property Name="computerDnsName" Type="Edm.String" />
        <Property Name="firstSeen" Type="Edm.DateTimeOffset" />
        <Property Name="lastSeen" Type="Edm.DateTimeOffset" />
        <Property Name="osPlatform" Type="Edm.String" />
        <Property Name="osProcessor" Type="Edm.String" />
        <Property Name="version" Type="Edm.String" />
        <Property Name="lastIpAddress" Type="Edm.String" />
        <Property Name="lastExternalIpAddress" Type="Edm.String" />
        <Property Name="agentVersion" Type="Edm.String" />
        <Property Name="osBuild" Type="Edm.Int64" />
        <Property Name="healthStatus" Type="microsoft.windowsDefenderATP.api.MachineHealthStatus" Nullable="false" />
        <Property Name="deviceValue" Type="microsoft.windowsDefenderATP.api.DeviceValue" Nullable="false" />
        <Property Name="rbacGroupId" Type="Edm.Int32" Nullable="false" />
        <Property Name="rbacGroupName" Type="Edm.String" />
        <Property Name="ipAddresses" Type="Collection(microsoft.windowsDefenderATP.api.MachineIpAddress)" />
        <Property Name="riskScore" Type="microsoft.windowsDefenderATP.api.RiskScore" />
        <Property Name="exposureLevel" Type="microsoft.windowsDefenderATP.api.ExposureLevel" Nullable="false" />
        <Property Name="isAadJoined" Type="Edm.Boolean" />
        <Property Name="aadDeviceId" Type="Edm.Guid" />
        <Property Name="machineTags" Type="Collection(Edm.String)" />
        <Property Name="vmMetadata" Type="microsoft.windowsDefenderATP.api.VmMetadata" />
        <Property Name="onboardingStatus" Type="microsoft.windowsDefenderATP.api.OnboardingStatus" Nullable="false" />
        <Property Name="osArchitecture" Type="Edm.String" />
        <Property Name="managedBy" Type="microsoft.windowsDefenderATP.api.DeviceManagedBy" Nullable="false" />
        <Property Name="managedByStatus" Type="microsoft.windowsDefenderATP.api.DeviceManagedByStatus" Nullable="false" />
      </EntityType>
      <ComplexType Name="MachineIpAddress">
        <Property Name="ipAddress" Type="Edm.String" />
        <Property Name="macAddress" Type="Edm.String" />
        <Property Name="type" Type="Edm.String" />
        <Property Name="operationalStatus" Type="Edm.String" />
      </ComplexType>
      <ComplexType Name="VmMetadata">
        <Property Name="vmId" Type="Edm.String" />
        <Property Name="cloudProvider" Type="Edm.String" />
        <Property Name="resourceId" Type="Edm.String" />
        <Property Name="subscriptionId" Type="Edm.String" />
      </ComplexType>
      <EnumType Name="ExclusionReason">
        <Member Name="NotExcluded" Value="0" />
      </EnumType>
      <EnumType Name="MachineHealthStatus">
        <Member Name="Unknown" Value="0" />
        <Member Name="Active" Value="1" />
        <Member Name="Inactive" Value="2" />
        <Member Name="ImpairedCommunication" Value="3" />
        <Member Name="NoSensorData" Value="4" />
        <Member Name="NoSensorDataImpairedCommunication" Value="5" />
      </EnumType>
      <EnumType Name="DeviceValue">
        <Member Name="Normal" Value="0" />
        <Member Name="Low" Value="1" />
        <Member Name="High" Value="2" />
      </EnumType>
      <EnumType Name="RiskScore">
        <Member Name="None" Value="0" />
        <Member Name="Informational" Value="1" />
        <Member Name="Low" Value="2" />
        <Member Name="Medium" Value="3" />
        <Member Name="High" Value="4" />
      </EnumType>
      <EnumType Name="ExposureLevel">
        <Member Name="None" Value="0" />
        <Member Name="Low" Value="1" />
        <Member Name="Medium" Value="2" />
        <Member Name="High" Value="3" />
      </EnumType>
      <EnumType Name="OnboardingStatus">
        <Member Name="InsufficientInfo" Value="0" />
        <Member Name="Onboarded" Value="1" />
        <Member Name="CanBeOnboarded" Value="2" />
        <Member Name="Unsupported" Value="3" />
      </EnumType>
      <EnumType Name="DeviceManagedBy">
        <Member Name="Unknown" Value="0" />
      </EnumType>
      <EnumType Name="DeviceManagedByStatus">
        <Member Name="Unknown" Value="0" />
      </EnumType>
      <EntityType Name="Indicator" OpenType="true">
        <Key>
          <PropertyRef Name="id" />
        </Key>
        <Property Name="id" Type="Edm.String" Nullable="false" />
        <Property Name="indicatorValue" Type="Edm.String" />
        <Property Name="indicatorType" Type="microsoft.windowsDefenderATP.api.tiIndicatorType" Nullable="false" />
        <Property Name="action" Type="microsoft.windowsDefenderATP.api.tiIndicatorAction" Nullable="false" />
        <Property Name="createdBy" Type="Edm.String" />
        <Property Name="severity" Type="microsoft.windowsDefenderATP.api.severity" Nullable="false" />
        <Property Name="category" Type="Edm.Int32" />
        <Property Name="application" Type="Edm.String" />
        <Property Name="educateUrl" Type="Edm.String" />
        <Property Name="bypassDurationHours" Type="Edm.Int32" />
        <Property Name="title" Type="Edm.String" />
        <Property Name="description" Type="Edm.String" />
        <Property Name="recommendedActions" Type="Edm.String" />
        <Property Name="creationTimeDateTimeUtc" Type="Edm.DateTimeOffset" Nullable="false" />
        <Property Name="expirationTime" Type="Edm.DateTimeOffset" />
        <Property Name="lastUpdateTime" Type="Edm.DateTimeOffset" Nullable="false" />
        <Property Name="lastUpdatedBy" Type="Edm.String" />
        <Property Name="rbacGroupNames" Type="Collection(Edm.String)" />
        <Property Name="rbacGroupIds" Type="Collection(Edm.Int32)" Nullable="false" />
        <Property Name="certificateInfo" Type="microsoft.windowsDefenderATP.api.CertificateIndicatorInformation" />
        <Property Name="notificationId" Type="Edm.Byte" />
        <Property Name="notificationBody" Type="Edm.String" />
        <Property Name="version" Type="Edm.String" />
        <Property Name="mitreTechniques" Type="Collection(Edm.String)" />
        <Property Name="historicalDetection" Type="Edm.Boolean" Nullable="false" />
        <Property Name="lookBackPeriod" Type="Edm.Int32" />
        <Property Name="generateAlert" Type="Edm.Boolean" Nullable="false" />
        <Property Name="additionalInfo" Type="Edm.String" />
        <Property Name="createdByDisplayName" Type="Edm.String" />
        <Property Name="externalId" Type="Edm.String" />
        <Property Name="createdBySource" Type="microsoft.windowsDefenderATP.api.KnownRequestSource" Nullable="false" />
      </EntityType>
      <ComplexType Name="CertificateIndicatorInformation">
        <Property Name="issuer" Type="Edm.String" />
        <Property Name="serialNumber" Type="Edm.String" />
        <Property Name="subject" Type="Edm.String" />
        <Property Name="sha256" Type="Edm.String" />
      </ComplexType>
      <EnumType Name="tiIndicatorType">
        <Member Name="FileSha1" Value="0" />
        <Member Name="FileSha256" Value="1" />
        <Member Name="IpAddress" Value="2" />
        <Member Name="DomainName" Value="3" />
        <Member Name="Url" Value="4" />
        <Member Name="CertificateThumbprint" Value="5" />
        <Member Name="FileMd5" Value="6" />
      </EnumType>
      <EnumType Name="tiIndicatorAction">
        <Member Name="Warn" Value="0" />
        <Member Name="Block" Value="1" />
        <Member Name="Audit" Value="2" />
        <Member Name="Alert" Value="3" />
        <Member Name="AlertAndBlock" Value="4" />
        <Member Name="BlockAndRemediate" Value="5" />
        <Member Name="Allowed" Value="6" />
      </EnumType>
      <EnumType Name="severity">
        <Member Name="Informational" Value="0" />
        <Member Name="Low" Value="1" />
        <Member Name="Medium" Value="2" />
        <Member Name="High" Value="3" />
      </EnumType>
      <EnumType Name="KnownRequestSource">
        <Member Name="PublicApi" Value="0" />
      </EnumType>
      <EntityContainer Name="EntityContainer">
        <EntitySet Name="Files" EntityType="microsoft.windowsDefenderATP.api.File" />
        <EntitySet Name="Machines" EntityType="microsoft.windowsDefenderATP.api.Machine" />
        <EntitySet Name="Indicators" EntityType="microsoft.windowsDefenderATP.api.Indicator" />
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"#;

pub(crate) fn routes() -> Routes {
    Routes::new().route("/api/$metadata", get(get_metadata)).route("/api/v1.0/$metadata", get(get_metadata))
}

async fn get_metadata() -> Response {
    let mut response = METADATA.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    headers.insert("odata-version", HeaderValue::from_static("4.0"));
    response
}
